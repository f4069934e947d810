// The identity catalogue: named numerical identities, each computing both sides with the
// project's own code and stating its tolerance, either deterministic (absolute) or a number
// of standard errors. `scoregrad verify` (cli/verify_command.cpp) runs them all and prints a table.
//
//   for (auto& r : sg::obj::run_identities("hutchinson")) std::cout << r.name << (r.pass ? " ok" :
//   " FAIL");
#pragma once
#include <functional>
#include <iosfwd>
#include <string>
#include <vector>

namespace sg::obj {

struct IdentityResult {
  std::string name;
  std::string statement;  // the identity, in one line
  double estimate = 0;    // left-hand side as computed
  double reference = 0;   // right-hand side as computed
  double std_error = 0;   // of estimate - reference (0 for deterministic checks)
  double tolerance =
      0;  // |estimate - reference| <= tolerance (absolute), or <= tolerance * std_error
  bool statistical = false;
  bool pass = false;
};

struct Identity {
  std::string name;
  std::function<std::vector<IdentityResult>()> run;
};

void register_identity(Identity id);
const std::vector<Identity>& identities();
// Runs every identity whose name contains `filter` (all when empty).
std::vector<IdentityResult> run_identities(const std::string& filter = "");
void print_identity_table(std::ostream& os, const std::vector<IdentityResult>& rows);

// Helpers for writing identities.
IdentityResult deterministic(std::string name, std::string statement, double estimate,
                             double reference, double tol);
// Mean of per-sample values against a reference, within `sigmas` standard errors.
IdentityResult mean_within(std::string name, std::string statement,
                           const std::vector<double>& samples, double reference,
                           double sigmas = 4.0);

}  // namespace sg::obj
