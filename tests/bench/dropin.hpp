// What the drop-in scenarios (dropin, nginx) share: an unmodified program run
// under egress-run, the preload shim's launcher, against an egressd whose
// pool holds addresses of this side of a peer namespace.
#pragma once

#include <string>
#include <vector>

#include "common.hpp"
#include "peer_netns.hpp"

namespace egress::bench {

// The pool the drop-in scenarios configure.
inline constexpr const char* kDropinPool = "dropin";

// egressd's configuration: one pool `kDropinPool` of `sources` with
// `strategy`, and a default client rule that allows the peer's subnet (a
// private range, denied by default) and nothing else.
json dropin_egressd_config(const egress::test::PeerNetns& peer, const std::vector<std::string>& sources,
                           const std::string& strategy);

// The words that run a program under egress-run against `socket` and the
// pool, with --fallback closed (a program the shim cannot serve fails rather
// than connecting directly unseen): --egress-run PATH, else the one built
// beside this tool, else the installed one; --preload PATH, else the shim
// built beside it when it exists. Throws when egress-run is missing.
std::vector<std::string> egress_run_prefix(const Args& a, const std::string& socket);

// egressd's STATUS, summed over the sources of `kDropinPool`:
// {"connects_ok": N, "errors": {"ENAME": N...}, "by_source": {"ADDR": N...}}.
// Throws when egressd does not answer.
json pool_counts(const std::string& socket);

}  // namespace egress::bench
