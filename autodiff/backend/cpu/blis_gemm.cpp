// The BLIS call behind blis_gemm.hpp (blis.h is large: only this file includes it).
#include "autodiff/backend/cpu/blis_gemm.hpp"

#ifdef SG_WITH_BLIS
#include <blis.h>
#endif

namespace sg::cpu {

bool blis_gemm(bool f64, int64_t m, int64_t n, int64_t k, const void* a, int64_t rsa, int64_t csa,
               const void* b, int64_t rsb, int64_t csb, void* c, int64_t rsc, int64_t csc,
               int threads) {
#ifdef SG_WITH_BLIS
  rntm_t rntm;
  bli_rntm_init(&rntm);
  bli_rntm_set_num_threads(threads, &rntm);
  if (f64) {
    double one = 1, zero = 0;
    bli_dgemm_ex(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, m, n, k, &one,
                 const_cast<double*>(static_cast<const double*>(a)), rsa, csa,
                 const_cast<double*>(static_cast<const double*>(b)), rsb, csb, &zero,
                 static_cast<double*>(c), rsc, csc, nullptr, &rntm);
  } else {
    float one = 1, zero = 0;
    bli_sgemm_ex(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, m, n, k, &one,
                 const_cast<float*>(static_cast<const float*>(a)), rsa, csa,
                 const_cast<float*>(static_cast<const float*>(b)), rsb, csb, &zero,
                 static_cast<float*>(c), rsc, csc, nullptr, &rntm);
  }
  return true;
#else
  (void)f64, (void)m, (void)n, (void)k, (void)a, (void)rsa, (void)csa, (void)b, (void)rsb,
      (void)csb, (void)c, (void)rsc, (void)csc, (void)threads;
  return false;
#endif
}

}  // namespace sg::cpu
