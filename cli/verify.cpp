// scoregrad-verify: runs the identity catalogue (objectives/identities.hpp), prints the table
// and exits non-zero if any identity fails. Usage: scoregrad-verify [name filter]
#include <iostream>

#include "objectives/identities.hpp"

int main(int argc, char** argv) {
  const std::string filter = argc > 1 ? argv[1] : "";
  const auto rows = sg::obj::run_identities(filter);
  sg::obj::print_identity_table(std::cout, rows);
  for (const auto& r : rows)
    if (!r.pass) return 1;
  return rows.empty() ? 2 : 0;
}
