# A checkerboard model trained for a few thousand steps beats a Gaussian fitted to the same
# training data: held-out negative log-likelihood (probability-flow ODE) lower by at least
# MARGIN nats beyond two standard errors, and samples closer to held-out data in MMD.
source "$(dirname "$0")/common.bash" "$@"
MARGIN=0.4

"$SG" train -o board --steps 4000 train.log_every=100 2> train.log
"$SG" likelihood board -n 1000 --grid 0 | tee likelihood.txt
"$SG" sample board -n 2000 | tee sample.txt
python3 - board/likelihood.json board/sample.json "$MARGIN" <<'PY'
import json, sys
lik, smp, margin = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), float(sys.argv[3])
model, gauss = lik["probability_flow"], lik["gaussian_fit"]
se = (model["std_error"] ** 2 + gauss["std_error"] ** 2) ** 0.5
gap = gauss["nll"] - model["nll"]
print(f"held-out NLL: model {model['nll']:.4f} +- {model['std_error']:.4f} nats, "
      f"Gaussian {gauss['nll']:.4f} +- {gauss['std_error']:.4f}: model better by {gap:.4f} (2 SE = {2 * se:.4f})")
assert gap - 2 * se >= margin, f"the model does not beat the Gaussian by {margin} nats beyond 2 SE"
m = smp["mmd2"]
print(f"MMD^2 to held-out: model {m['model']:.5f}, Gaussian {m['gaussian_fit']:.5f}, training data {m['training_data']:.5f}")
assert m["model"] < 0.5 * m["gaussian_fit"], "samples are not clearly closer to the data than the Gaussian's"
s = lik["samples"]
print(f"likelihood's own sample check: model {s['mmd2']['model']:.5f}, Gaussian {s['mmd2']['gaussian_fit']:.5f}")
assert not s["worse_than_gaussian"] and s["mmd2"]["model"] < s["mmd2"]["gaussian_fit"]
PY
grep -q "WARNING" likelihood.txt && fail "likelihood warned about a good model's samples"
ok "checkerboard model beats the fitted Gaussian by more than $MARGIN nats (beyond 2 SE) and in MMD"
