// Op table, custom family: a value computed outside the tape (e.g. by an ODE solve) recorded
// with a caller-supplied VJP, like torch.autograd.Function or jax.custom_vjp. The rule runs
// once per cotangent and serves every input; there is no JVP (forward mode through a custom
// op raises GradError).
#include "autodiff/ops/op_table.hpp"

namespace sg {
namespace {

const OpDef kOps[] = {
    // y = value (computed by the caller):  dx_i = rule.vjp(x, y, g)[i]
    {OpId::custom, "custom", -1,
     [](std::span<const Tensor> in, const Attrs& a) {
       if (!a.custom || !a.value.defined()) fail<ValueError>("custom: needs a rule and a value");
       return Meta{a.value.shape(), a.value.dtype(), a.value.device()};
     },
     [](std::span<const Tensor>, const Attrs& a, const Meta& m) {
       return make_view(a.value, m.shape, a.value.strides(), a.value.offset());
     },
     [](const RuleCtx& c, int i, const Tensor& g) {
       const CustomRule& r = *c.attrs.custom;
       if (!c.scratch) fail<GradError>("custom op ", r.name(), ": VJP called without scratch");
       std::vector<Tensor>& shares = *c.scratch;  // one application, one cotangent
       if (shares.empty()) {
         shares = r.vjp(c.in, c.out, g);
         if (shares.size() != c.in.size())
           fail<GradError>("custom op ", r.name(), ": vjp returned ", shares.size(),
                           " cotangents for ", c.in.size(), " inputs");
       }
       return shares[static_cast<std::size_t>(i)];
     },
     [](const RuleCtx& c, int, const Tensor&) -> Tensor {
       fail<GradError>("custom op ", c.attrs.custom->name(), " has no forward-mode rule");
     }},
};

}  // namespace

std::span<const OpDef> custom_ops() { return kOps; }

Tensor custom_op(const std::vector<Tensor>& inputs, const Tensor& value,
                 std::shared_ptr<const CustomRule> rule) {
  return apply(OpId::custom, std::span<const Tensor>(inputs),
               Attrs{.custom = std::move(rule), .value = value.detach()});
}

}  // namespace sg
