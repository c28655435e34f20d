# The MPI test binary: its own main creates the MPI communicator; CTest runs it under mpirun on
# 2, 3 and 4 ranks (oversubscribed on small machines, as root in CI).
if(NOT DPTRAIN_HAVE_MPI)
  return()
endif()
file(GLOB_RECURSE mpi_test_sources CONFIGURE_DEPENDS *_mpi_test.cpp)
add_executable(dptrain_mpi_tests mpi_main.cpp support/TestSupport.cpp support/TrainingRun.cpp
               support/MpiTestSupport.cpp ${mpi_test_sources})
target_link_libraries(dptrain_mpi_tests PRIVATE dptrain_trainer Catch2::Catch2)
target_include_directories(dptrain_mpi_tests PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
target_compile_definitions(dptrain_mpi_tests PRIVATE DPTRAIN_BINARY="$<TARGET_FILE:dptrain>"
                                                     DPTRAIN_SOURCE_DIR="${DPTRAIN_ROOT}")
set(mpi_env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
            ${DPTRAIN_TEST_CACHE_ENV})
foreach(n 2 3 4)
  add_test(NAME mpi_tests_np${n}
           COMMAND ${MPIEXEC_EXECUTABLE} -np ${n} --oversubscribe --bind-to none
                   $<TARGET_FILE:dptrain_mpi_tests>)
  # Several ranks per core: run these one at a time.
  set_tests_properties(mpi_tests_np${n} PROPERTIES ENVIRONMENT "${mpi_env}" RUN_SERIAL TRUE TIMEOUT 900 LABELS mpi)
endforeach()
