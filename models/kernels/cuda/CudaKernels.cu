// The CUDA backend's runtime and its simplest operations: the one backend per process (created on
// first use, never destroyed, so tensors released during static destruction still find it), the
// caching allocator, the compute and copy streams, pinned memory, CUDA graphs, the vector
// operations, GEMM through cuBLAS (row-major as C^T = B^T A^T: no copies), bias and activations,
// maxout and dropout (Philox keyed exactly as on the CPU, so the masks are the same bits).
#include <climits>
#include <cstring>
#include <mutex>
#include <string>

#include "models/kernels/cuda/CudaBackend.h"
#include "models/kernels/cuda/CudaInternal.cuh"

namespace dptrain {

namespace cuda {

namespace {

std::once_flag g_once;
CudaKernels* g_backend = nullptr;
int g_chosen_device = -1;
std::string g_device_name;
thread_local int t_bound_device = -1;

// CUDA's current device is per host thread: a thread that reaches the backend first makes the
// backend's device its own (a comparison when it already is).
void bind_thread(int device) {
  if (t_bound_device != device) {
    DPT_CUDA_CHECK(cudaSetDevice(device));
    t_bound_device = device;
  }
}

CudaKernels* backend_or_null() {
  std::call_once(g_once, [] {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess || count <= 0) {
      (void)cudaGetLastError();  // clear the sticky "no device"/"no driver" error
      return;
    }
    const int device = g_chosen_device >= 0 ? g_chosen_device : 0;
    g_backend = new CudaKernels(device);  // lives until exit (see the file comment)
  });
  if (g_backend) bind_thread(g_backend->index());
  return g_backend;
}

CudaKernels& backend() {
  CudaKernels* b = backend_or_null();
  if (!b) fail_input("no CUDA device is available on this machine; set device = \"cpu\"");
  return *b;
}

}  // namespace

void fail_call(const char* call, const std::string& message, const char* file, int line) {
  std::string where = g_device_name.empty() ? std::string("no device chosen yet")
                                            : "device " + std::to_string(t_bound_device) + ", " + g_device_name;
  fail_internal(error_origin(file, line) + call + " failed: " + message + " (" + where + ")");
}

const char* cublas_message(cublasStatus_t status) {
  switch (status) {
    case CUBLAS_STATUS_SUCCESS:
      return "success";
    case CUBLAS_STATUS_NOT_INITIALIZED:
      return "cuBLAS not initialized";
    case CUBLAS_STATUS_ALLOC_FAILED:
      return "cuBLAS allocation failed";
    case CUBLAS_STATUS_INVALID_VALUE:
      return "cuBLAS invalid value";
    case CUBLAS_STATUS_ARCH_MISMATCH:
      return "cuBLAS architecture mismatch";
    case CUBLAS_STATUS_MAPPING_ERROR:
      return "cuBLAS mapping error";
    case CUBLAS_STATUS_EXECUTION_FAILED:
      return "cuBLAS execution failed";
    case CUBLAS_STATUS_INTERNAL_ERROR:
      return "cuBLAS internal error";
    case CUBLAS_STATUS_NOT_SUPPORTED:
      return "cuBLAS operation not supported";
    default:
      return "cuBLAS error";
  }
}

// ---- caching allocator

namespace {
// Small blocks round to 512 bytes, large ones to 1 MiB, so that sizes repeat and blocks are reused.
size_t rounded_size(size_t bytes) {
  if (bytes == 0) bytes = 1;
  const size_t unit = bytes < (size_t{1} << 20) ? 512 : (size_t{1} << 20);
  return (bytes + unit - 1) / unit * unit;
}
}  // namespace

void* CachingAllocator::allocate(size_t bytes) {
  const size_t size = rounded_size(bytes);
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = free_.lower_bound(size);
  if (it != free_.end() && it->first <= 2 * size) {  // a cached block, wasting at most half
    void* p = it->second;
    free_.erase(it);
    return p;
  }
  void* p = nullptr;
  cudaError_t err = cudaMalloc(&p, size);
  if (err == cudaErrorMemoryAllocation) {
    (void)cudaGetLastError();
    for (auto& [s, q] : free_) {
      sizes_.erase(q);
      DPT_CUDA_CHECK(cudaFree(q));
    }
    free_.clear();
    err = cudaMalloc(&p, size);
  }
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    fail_call("cudaMalloc", std::string(cudaGetErrorString(err)) + " allocating " + std::to_string(bytes) + " bytes",
              __FILE__, __LINE__);
  }
  sizes_[p] = size;
  return p;
}

void CachingAllocator::release(void* p) {
  if (!p) return;
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = sizes_.find(p);
  if (it == sizes_.end()) fail_internal("CUDA backend: release of a pointer it did not allocate");
  free_.emplace(it->second, p);
}

void CachingAllocator::trim() {
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto& [s, q] : free_) {
    sizes_.erase(q);
    DPT_CUDA_CHECK(cudaFree(q));
  }
  free_.clear();
}

// ---- the backend object

CudaKernels::CudaKernels(int device) : device_(device), allocator_(device) {
  DPT_CUDA_CHECK(cudaSetDevice(device));
  t_bound_device = device;
  cudaDeviceProp prop{};
  DPT_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  g_device_name = prop.name;
  DPT_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  DPT_CUDA_CHECK(cudaStreamCreateWithFlags(&copy_stream_, cudaStreamNonBlocking));
  DPT_CUDA_CHECK(cudaEventCreateWithFlags(&compute_mark_, cudaEventDisableTiming));
  DPT_CUDA_CHECK(cudaEventCreateWithFlags(&copies_done_, cudaEventDisableTiming));
  DPT_CUBLAS_CHECK(cublasCreate(&cublas_));
  DPT_CUBLAS_CHECK(cublasSetStream(cublas_, stream_));
  // Full float32 (no TF32): CPU and CUDA training must agree to 1e-4.
  DPT_CUBLAS_CHECK(cublasSetMathMode(cublas_, CUBLAS_DEFAULT_MATH));
  // cuBLAS's own workspace, so it never allocates under CUDA graph capture and one stream owns it.
  constexpr size_t workspace_bytes = size_t{32} << 20;
  DPT_CUDA_CHECK(cudaMalloc(&cublas_workspace_, workspace_bytes));
  DPT_CUBLAS_CHECK(cublasSetWorkspace(cublas_, cublas_workspace_, workspace_bytes));
  DPT_CUDA_CHECK(cudaMalloc(&errors_, 4 * sizeof(int)));
  DPT_CUDA_CHECK(cudaMemset(errors_, 0, 4 * sizeof(int)));
  DPT_CUDA_CHECK(cudaHostAlloc(&host_pinned_, 64, cudaHostAllocDefault));
}

CudaKernels::~CudaKernels() {
  // Not reached in practice (the backend lives until exit); errors are ignored on the way out.
  cublasDestroy(cublas_);
  cudaFree(cublas_workspace_);
  cudaFree(errors_);
  cudaFreeHost(host_pinned_);
  cudaEventDestroy(compute_mark_);
  cudaEventDestroy(copies_done_);
  cudaStreamDestroy(stream_);
  cudaStreamDestroy(copy_stream_);
}

void* CudaKernels::scratch(Scratch& s, size_t bytes) {
  if (s.bytes < bytes) {
    if (s.data) retired_.push_back(s.data);
    s.bytes = std::max(bytes, 2 * s.bytes);
    s.data = allocator_.allocate(s.bytes);
  }
  return s.data;
}

void CudaKernels::check_device_errors() {
  int* host = reinterpret_cast<int*>(static_cast<char*>(host_pinned_) + 16);
  DPT_CUDA_CHECK(cudaMemcpyAsync(host, errors_, 3 * sizeof(int), cudaMemcpyDeviceToHost, stream_));
  DPT_CUDA_CHECK(cudaStreamSynchronize(stream_));
  if (host[0] == no_error) return;
  const int code = host[0], a = host[1], b = host[2];
  DPT_CUDA_CHECK(cudaMemsetAsync(errors_, 0, 4 * sizeof(int), stream_));
  DPT_CUDA_CHECK(cudaStreamSynchronize(stream_));
  switch (code) {
    case bad_class_label:
      fail_input("label " + std::to_string(a) + " out of range for " + std::to_string(b) + " outputs");
    case bad_binary_label:
      fail_input("label " + std::to_string(a) + " is not 0 or 1 for binary cross-entropy");
    case bad_embedding_id:
      fail_input("embedding: id " + std::to_string(a) + " is outside [0, " + std::to_string(b) + ")");
    default:
      fail_internal("CUDA backend: unknown device error code " + std::to_string(code));
  }
}

void CudaKernels::synchronize() { check_device_errors(); }

void CudaKernels::copy_to_host(void* dst, const void* src, size_t bytes) {
  DPT_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_));
  check_device_errors();
}

void CudaKernels::copy_async_to_device(void* dst, const void* src, size_t bytes) {
  DPT_CUDA_CHECK(cudaEventRecord(compute_mark_, stream_));
  DPT_CUDA_CHECK(cudaStreamWaitEvent(copy_stream_, compute_mark_, 0));
  DPT_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, copy_stream_));
  DPT_CUDA_CHECK(cudaEventRecord(copies_done_, copy_stream_));
}

void CudaKernels::wait_copies() { DPT_CUDA_CHECK(cudaStreamWaitEvent(stream_, copies_done_, 0)); }

void CudaKernels::sync_copies() { DPT_CUDA_CHECK(cudaStreamSynchronize(copy_stream_)); }

// ---- vector operations

namespace {

__global__ void fill_kernel(int64_t n, float value, float* x) { DPT_GRID_STRIDE(i, n) x[i] = value; }
__global__ void axpy_kernel(int64_t n, float a, const float* x, float* y) { DPT_GRID_STRIDE(i, n) y[i] += a * x[i]; }
__global__ void scale_kernel(int64_t n, float a, float* x) { DPT_GRID_STRIDE(i, n) x[i] *= a; }
__global__ void add_kernel(int64_t n, const float* a, const float* b, float* y) {
  DPT_GRID_STRIDE(i, n) y[i] = a[i] + b[i];
}
__global__ void multiply_kernel(int64_t n, const float* a, const float* b, float* y) {
  DPT_GRID_STRIDE(i, n) y[i] = a[i] * b[i];
}

// First pass of sum / sum of squares: one double partial per block.
__global__ void reduce_partial_kernel(int64_t n, const float* x, bool squares, double* partial) {
  __shared__ double shared[threads];
  double acc = 0.0;
  DPT_GRID_STRIDE(i, n) {
    const float v = x[i];
    acc += squares ? static_cast<double>(v) * v : static_cast<double>(v);
  }
  double total = block_sum<threads>(acc, shared);
  if (threadIdx.x == 0) partial[blockIdx.x] = total;
}

// Second pass: the partials in order, by one block.
__global__ void reduce_final_kernel(int64_t n, const double* partial, double* result) {
  __shared__ double shared[threads];
  double acc = 0.0;
  for (int64_t i = threadIdx.x; i < n; i += threads) acc += partial[i];
  double total = block_sum<threads>(acc, shared);
  if (threadIdx.x == 0) *result = total;
}

}  // namespace

void CudaKernels::fill(int64_t n, float value, float* x) {
  if (n <= 0) return;
  if (value == 0.0f) {
    DPT_CUDA_CHECK(cudaMemsetAsync(x, 0, static_cast<size_t>(n) * sizeof(float), stream_));
    return;
  }
  fill_kernel<<<blocks_for(n), threads, 0, stream_>>>(n, value, x);
  DPT_CUDA_LAUNCHED();
}

void CudaKernels::copy(int64_t n, const float* x, float* y) {
  if (n <= 0 || x == y) return;
  DPT_CUDA_CHECK(cudaMemcpyAsync(y, x, static_cast<size_t>(n) * sizeof(float), cudaMemcpyDeviceToDevice, stream_));
}

void CudaKernels::axpy(int64_t n, float a, const float* x, float* y) {
  if (n <= 0) return;
  axpy_kernel<<<blocks_for(n), threads, 0, stream_>>>(n, a, x, y);
  DPT_CUDA_LAUNCHED();
}

void CudaKernels::scale(int64_t n, float a, float* x) {
  if (n <= 0) return;
  scale_kernel<<<blocks_for(n), threads, 0, stream_>>>(n, a, x);
  DPT_CUDA_LAUNCHED();
}

void CudaKernels::add(int64_t n, const float* a, const float* b, float* y) {
  if (n <= 0) return;
  add_kernel<<<blocks_for(n), threads, 0, stream_>>>(n, a, b, y);
  DPT_CUDA_LAUNCHED();
}

void CudaKernels::multiply(int64_t n, const float* a, const float* b, float* y) {
  if (n <= 0) return;
  multiply_kernel<<<blocks_for(n), threads, 0, stream_>>>(n, a, b, y);
  DPT_CUDA_LAUNCHED();
}

double CudaKernels::reduce_to_host(int64_t n, const float* x, bool squares) {
  if (n <= 0) return 0.0;
  // The grid depends on n only, so the order of the sums (and the result's bits) never changes.
  const unsigned blocks = std::min<unsigned>(1024, blocks_for(n, threads * 8));
  double* partial = scratch_doubles(blocks + 1);
  reduce_partial_kernel<<<blocks, threads, 0, stream_>>>(n, x, squares, partial);
  DPT_CUDA_LAUNCHED();
  reduce_final_kernel<<<1, threads, 0, stream_>>>(blocks, partial, partial + blocks);
  DPT_CUDA_LAUNCHED();
  double* host = static_cast<double*>(host_pinned_);
  DPT_CUDA_CHECK(cudaMemcpyAsync(host, partial + blocks, sizeof(double), cudaMemcpyDeviceToHost, stream_));
  check_device_errors();  // synchronizes
  return *host;
}

double CudaKernels::sum_squares(int64_t n, const float* x) { return reduce_to_host(n, x, true); }
double CudaKernels::sum(int64_t n, const float* x) { return reduce_to_host(n, x, false); }

// ---- GEMM

void CudaKernels::gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                       int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if (m <= 0 || n <= 0) return;
  DPT_ASSERT(m <= INT_MAX && n <= INT_MAX && k <= INT_MAX && lda <= INT_MAX && ldb <= INT_MAX && ldc <= INT_MAX,
             "gemm dimensions beyond 32 bits");
  // Row-major C[m, n] is column-major C^T[n, m] = op(B)^T op(A)^T, and a row-major matrix with
  // leading dimension ld is its column-major transpose with the same ld: swap the operands.
  DPT_CUBLAS_CHECK(cublasSgemm(cublas_, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N,
                               static_cast<int>(n), static_cast<int>(m), static_cast<int>(k), &alpha, b,
                               static_cast<int>(ldb), a, static_cast<int>(lda), &beta, c, static_cast<int>(ldc)));
}

// ---- bias gradients, bias + activation, activations

namespace {

// dbias[c] += sum over rows of dy[r, c]: 32 columns per block, 8 row lanes, then the 8 lane sums in order.
__global__ void row_bias_grad_kernel(int64_t rows, int64_t cols, const float* dy, float* dbias) {
  __shared__ float part[8][33];
  const int64_t c = blockIdx.x * 32 + threadIdx.x;
  float acc = 0.0f;
  if (c < cols)
    for (int64_t r = threadIdx.y; r < rows; r += 8) acc += dy[r * cols + c];
  part[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && c < cols) {
    float total = 0.0f;
    for (int i = 0; i < 8; ++i) total += part[i][threadIdx.x];
    dbias[c] += total;
  }
}

// dbias[ch] += sum over samples and positions: one block per channel.
__global__ void channel_bias_grad_kernel(int64_t n, int64_t c, int64_t hw, const float* dy, float* dbias) {
  __shared__ float shared[threads];
  const int64_t ch = blockIdx.x;
  float acc = 0.0f;
  for (int64_t i = threadIdx.x; i < n * hw; i += threads) {
    const int64_t s = i / hw, j = i - s * hw;
    acc += dy[(s * c + ch) * hw + j];
  }
  float total = block_sum<threads>(acc, shared);
  if (threadIdx.x == 0) dbias[ch] += total;
}

__global__ void bias_activation_kernel(Activation act, float slope, int64_t total, int64_t cols, int64_t hw,
                                       const float* bias, float* y) {
  DPT_GRID_STRIDE(i, total) {
    const float b = bias ? bias[(i / hw) % cols] : 0.0f;
    y[i] = activate(act, slope, y[i] + b);
  }
}

__global__ void activation_kernel(Activation act, float slope, int64_t n, const float* x, float* y) {
  DPT_GRID_STRIDE(i, n) y[i] = activate(act, slope, x[i]);
}

__global__ void activation_backward_kernel(Activation act, float slope, int64_t n, const float* y, const float* dy,
                                           float* dx) {
  DPT_GRID_STRIDE(i, n) dx[i] = dy[i] * activation_derivative(act, slope, y[i]);
}

__global__ void maxout_kernel(int64_t outputs, int64_t pieces, const float* x, float* y) {
  DPT_GRID_STRIDE(o, outputs) {
    const float* xi = x + o * pieces;
    float m = xi[0];
    for (int64_t i = 1; i < pieces; ++i) m = fmaxf(m, xi[i]);
    y[o] = m;
  }
}

__global__ void maxout_backward_kernel(int64_t outputs, int64_t pieces, const float* x, const float* y, const float* dy,
                                       float* dx) {
  DPT_GRID_STRIDE(o, outputs) {
    const float* xi = x + o * pieces;
    float* di = dx + o * pieces;
    bool routed = false;  // the first piece equal to the max takes the gradient, as on the CPU
    for (int64_t i = 0; i < pieces; ++i) {
      const bool take = !routed && xi[i] == y[o];
      di[i] = take ? dy[o] : 0.0f;
      routed = routed || take;
    }
  }
}

__global__ void dropout_kernel(int64_t total, int64_t row_size, float p, float keep_scale, RandomKey key, uint64_t step,
                               int64_t row0, const float* x, float* y) {
  DPT_GRID_STRIDE(i, total) {
    const int64_t r = i / row_size, e = i - r * row_size;
    const bool keep = philox_uniform(key, step, static_cast<uint64_t>(row0 + r), static_cast<uint64_t>(e)) > p;
    y[i] = keep ? x[i] * keep_scale : 0.0f;
  }
}

}  // namespace

void CudaKernels::row_bias_grad(int64_t rows, int64_t cols, const float* dy, float* dbias) {
  if (rows <= 0 || cols <= 0) return;
  row_bias_grad_kernel<<<static_cast<unsigned>((cols + 31) / 32), dim3(32, 8), 0, stream_>>>(rows, cols, dy, dbias);
  DPT_CUDA_LAUNCHED();
}

void CudaKernels::channel_bias_grad(int64_t n, int64_t c, int64_t hw, const float* dy, float* dbias) {
  if (n <= 0 || c <= 0 || hw <= 0) return;
  channel_bias_grad_kernel<<<static_cast<unsigned>(c), threads, 0, stream_>>>(n, c, hw, dy, dbias);
  DPT_CUDA_LAUNCHED();
}

void CudaKernels::bias_activation(Activation act, float slope, int64_t rows, int64_t cols, int64_t hw,
                                  const float* bias, float* y) {
  const int64_t total = rows * cols * hw;
  if ((act == Activation::identity && !bias) || total <= 0) return;
  bias_activation_kernel<<<blocks_for(total), threads, 0, stream_>>>(act, slope, total, cols, hw, bias, y);
  DPT_CUDA_LAUNCHED();
}

void CudaKernels::activation(Activation act, float slope, int64_t n, const float* x, float* y) {
  if (n <= 0) return;
  activation_kernel<<<blocks_for(n), threads, 0, stream_>>>(act, slope, n, x, y);
  DPT_CUDA_LAUNCHED();
}

void CudaKernels::activation_backward(Activation act, float slope, int64_t n, const float* y, const float* dy,
                                      float* dx) {
  if (n <= 0) return;
  activation_backward_kernel<<<blocks_for(n), threads, 0, stream_>>>(act, slope, n, y, dy, dx);
  DPT_CUDA_LAUNCHED();
}

void CudaKernels::maxout(int64_t rows, int64_t out_cols, int64_t pieces, const float* x, float* y) {
  const int64_t outputs = rows * out_cols;
  if (outputs <= 0) return;
  maxout_kernel<<<blocks_for(outputs), threads, 0, stream_>>>(outputs, pieces, x, y);
  DPT_CUDA_LAUNCHED();
}

void CudaKernels::maxout_backward(int64_t rows, int64_t out_cols, int64_t pieces, const float* x, const float* y,
                                  const float* dy, float* dx) {
  const int64_t outputs = rows * out_cols;
  if (outputs <= 0) return;
  maxout_backward_kernel<<<blocks_for(outputs), threads, 0, stream_>>>(outputs, pieces, x, y, dy, dx);
  DPT_CUDA_LAUNCHED();
}

void CudaKernels::dropout(int64_t rows, int64_t row_size, float p, const SampleKeys& keys, const float* x, float* y) {
  const int64_t total = rows * row_size;
  if (total <= 0) return;
  const float keep_scale = 1.0f / (1.0f - p);  // computed as the CPU computes it
  dropout_kernel<<<blocks_for(total), threads, 0, stream_>>>(total, row_size, p, keep_scale, keys.key, keys.step,
                                                             keys.row0, x, y);
  DPT_CUDA_LAUNCHED();
}

void CudaKernels::dropout_backward(int64_t rows, int64_t row_size, float p, const SampleKeys& keys, const float* dy,
                                   float* dx) {
  dropout(rows, row_size, p, keys, dy, dx);  // the same mask and scale apply to the gradient
}

}  // namespace cuda

// ---- public entry points (CudaBackend.h)

KernelBackend* cuda_kernels_if_available() { return cuda::backend_or_null(); }

bool cuda_compiled() { return true; }

int cuda_devices() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return count;
}

void cuda_copy(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes) {
  if (bytes == 0) return;
  cuda::CudaKernels& k = cuda::backend();
  if (src_device == Device::cuda && dst_device == Device::cpu) return k.copy_to_host(dst, src, bytes);
  if (src_device == Device::cpu && dst_device == Device::cuda) {
    // Queued in order with the compute, then waited for: the host buffer may be reused on return.
    DPT_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, k.stream()));
    DPT_CUDA_CHECK(cudaStreamSynchronize(k.stream()));
    return;
  }
  DPT_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, k.stream()));
}

void cuda_set_device(int index) {
  const int count = cuda_devices();
  if (index < 0 || index >= count)
    fail_input("CUDA device " + std::to_string(index) + " does not exist (" + std::to_string(count) +
               " visible; check CUDA_VISIBLE_DEVICES)");
  if (cuda::g_backend) {
    if (cuda::g_backend->index() != index)
      fail_internal("cuda_set_device(" + std::to_string(index) + ") after the CUDA backend started on device " +
                    std::to_string(cuda::g_backend->index()));
    return;
  }
  cuda::g_chosen_device = index;
  DPT_CUDA_CHECK(cudaSetDevice(index));
}

int cuda_device_for_local_rank(int local_rank) {
  const int count = cuda_devices();
  if (count <= 0) return -1;
  return (local_rank < 0 ? 0 : local_rank) % count;
}

const char* cuda_device_name() { return cuda::backend_or_null() ? cuda::g_device_name.c_str() : ""; }

void* cuda_compute_stream() {
  cuda::CudaKernels* k = cuda::backend_or_null();
  return k ? static_cast<void*>(k->stream()) : nullptr;
}

void* cuda_host_alloc(size_t bytes) {
  cuda::backend();
  void* p = nullptr;
  DPT_CUDA_CHECK(cudaHostAlloc(&p, bytes ? bytes : 1, cudaHostAllocPortable));
  return p;
}

void cuda_host_free(void* p) {
  if (p) DPT_CUDA_CHECK(cudaFreeHost(p));
}

void cuda_copy_async_to_device(void* dst, const void* src, size_t bytes) {
  if (bytes) cuda::backend().copy_async_to_device(dst, src, bytes);
}

void cuda_wait_copies() {
  if (cuda::CudaKernels* k = cuda::backend_or_null()) k->wait_copies();
}

void cuda_sync_copies() {
  if (cuda::CudaKernels* k = cuda::backend_or_null()) k->sync_copies();
}

// ---- CUDA graphs

bool cuda_graphs_supported() {
  if (!cuda::backend_or_null()) return false;
  int driver = 0;
  return cudaDriverGetVersion(&driver) == cudaSuccess && driver >= 11000;
}

struct CudaGraph::Impl {
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  uint64_t key = 0;
  int captures = 0;
  void destroy() {
    if (exec) cudaGraphExecDestroy(exec);
    if (graph) cudaGraphDestroy(graph);
    exec = nullptr;
    graph = nullptr;
  }
};

CudaGraph::CudaGraph() : impl_(std::make_unique<Impl>()) {}
CudaGraph::~CudaGraph() { impl_->destroy(); }
void CudaGraph::reset() { impl_->destroy(); }
bool CudaGraph::captured() const { return impl_->exec != nullptr; }
int CudaGraph::captures() const { return impl_->captures; }

void CudaGraph::run(uint64_t key, const std::function<void()>& body) {
  cuda::CudaKernels& k = cuda::backend();
  if (!impl_->exec || impl_->key != key) {
    impl_->destroy();
    // Relaxed: a cache miss of the allocator (cudaMalloc) under capture is allowed, not an error.
    DPT_CUDA_CHECK(cudaStreamBeginCapture(k.stream(), cudaStreamCaptureModeRelaxed));
    try {
      body();
    } catch (...) {
      cudaGraph_t broken = nullptr;
      cudaStreamEndCapture(k.stream(), &broken);
      if (broken) cudaGraphDestroy(broken);
      (void)cudaGetLastError();
      throw;
    }
    DPT_CUDA_CHECK(cudaStreamEndCapture(k.stream(), &impl_->graph));
    DPT_CUDA_CHECK(cudaGraphInstantiate(&impl_->exec, impl_->graph, 0));
    impl_->key = key;
    ++impl_->captures;
  }
  DPT_CUDA_CHECK(cudaGraphLaunch(impl_->exec, k.stream()));
}

}  // namespace dptrain
