// The STATUS document: what an operator asks egressd about itself. JSON,
// described field by field in proto/PROTOCOL.md.
#pragma once

#include <nlohmann/json.hpp>

#include "broker/loop.hpp"

namespace egress {

// As `ctx`'s loop sees it; the counts are every loop's.
nlohmann::json status_document(const LoopContext& ctx);

}  // namespace egress
