#include "result.hpp"

#include <cstring>

namespace egress {

std::string errno_name(int code) {
    if (const char* name = strerrorname_np(code)) return name;
    return "E" + std::to_string(code);
}

std::string errno_text(int code) {
    if (const char* text = strerrordesc_np(code)) return text;
    return "Unknown error " + std::to_string(code);
}

}  // namespace egress
