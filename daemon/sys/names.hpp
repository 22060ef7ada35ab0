// User and group names from the system's databases (NSS: /etc/passwd,
// /etc/group, LDAP, ...), for the config loader.
#pragma once

#include "policy/policy.hpp"

namespace egress {

NameResolver system_names();

}  // namespace egress
