// scoregrad's autodiff in one include: tensors, ops, reverse and forward mode, transforms,
// gradient and statistical verification.
#pragma once
#include "autodiff/core/rng.hpp"
#include "autodiff/core/tensor.hpp"
#include "autodiff/ops/ops.hpp"
#include "autodiff/ops/sort.hpp"
#include "autodiff/tape/autograd.hpp"
#include "autodiff/tape/forward.hpp"
#include "autodiff/transforms/transforms.hpp"
#include "autodiff/verify/gradcheck.hpp"
#include "autodiff/verify/stats.hpp"
