// The kernel backend's compute stream, which the NCCL backend's collectives wait on through an event.
// A .cu file because the backend's class is declared in a CUDA header (CudaInternal.cuh); once
// CudaBackend.h offers the stream in plain C++ this file can go.
#include "comm/backend/nccl/NcclCommunicator.h"
#include "models/kernels/cuda/CudaBackend.h"
#include "models/kernels/cuda/CudaInternal.cuh"

namespace dptrain {

cudaStream_t nccl_compute_stream() {
  auto* backend = dynamic_cast<cuda::CudaKernels*>(cuda_kernels_if_available());
  return backend ? backend->stream() : cudaStreamLegacy;
}

}  // namespace dptrain
