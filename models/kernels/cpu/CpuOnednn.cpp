// oneDNN's sgemm as an engine of the CPU backend's products (CpuEngine.h), where the build found
// libdnnl (DPTRAIN_HAVE_DNNL). It threads itself over the process's OpenMP pool (libgomp, the
// same runtime as ours) and runs on one thread inside a parallel region. Every call goes through
// DNNL_CHECK, so a refused call is an error naming the call and its status, never a silent zero.
#include <string>

#include "models/core/Error.h"
#include "models/kernels/cpu/CpuInternal.h"

#if defined(DPTRAIN_HAVE_DNNL)
#include <dnnl.h>

#define DNNL_CHECK(call)                                                                  \
  do {                                                                                    \
    const dnnl_status_t dnnl_check_status = (call);                                       \
    if (dnnl_check_status != dnnl_success)                                                \
      ::dptrain::fail_internal(std::string("oneDNN: ") + #call + " failed with status " + \
                               std::to_string(static_cast<int>(dnnl_check_status)));      \
  } while (0)

namespace dptrain {

bool cpu_onednn_available() { return true; }

void cpu_onednn_sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                      int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  DNNL_CHECK(dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', m, n, k, alpha, a, lda, b, ldb, beta, c, ldc));
}

}  // namespace dptrain

#else

namespace dptrain {

bool cpu_onednn_available() { return false; }

void cpu_onednn_sgemm(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t, const float*, int64_t, float,
                      float*, int64_t) {
  fail_internal("oneDNN product asked of a build without oneDNN");
}

}  // namespace dptrain

#endif
