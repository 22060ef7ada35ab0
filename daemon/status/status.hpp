// The STATUS document: what an operator asks egressd about itself. JSON,
// described field by field in proto/PROTOCOL.md.
#pragma once

#include <nlohmann/json.hpp>

#include "session/context.hpp"

namespace egress {

nlohmann::json status_document(const BrokerContext& ctx);

}  // namespace egress
