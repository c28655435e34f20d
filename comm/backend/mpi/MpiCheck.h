// The check macro for MPI calls of the MPI backend: the communicators use MPI_ERRORS_RETURN, so
// failures arrive here and become a peer error carrying file:line and MPI's own message.
#pragma once

#include <mpi.h>

#include <string>

#include "models/core/Error.h"

#define DPT_MPI(call)                                                                                               \
  do {                                                                                                              \
    int dpt_mpi_rc = (call);                                                                                        \
    if (dpt_mpi_rc != MPI_SUCCESS) {                                                                                \
      char dpt_msg[MPI_MAX_ERROR_STRING];                                                                           \
      int dpt_len = 0;                                                                                              \
      MPI_Error_string(dpt_mpi_rc, dpt_msg, &dpt_len);                                                              \
      throw ::dptrain::Error(::dptrain::ErrorKind::peer, ::dptrain::error_origin(__FILE__, __LINE__) + #call ": " + \
                                                             std::string(dpt_msg, dpt_len));                        \
    }                                                                                                               \
  } while (0)
