// Lines the preload shim writes to the program's stderr: built in a fixed
// buffer and written with one write(2), so they are safe anywhere (signal
// handlers included) and never interleave within a line.
#pragma once

#include <cstddef>

#include "wire.hpp"

namespace egress::preload {

class Line {
public:
    Line();  // starts with "egress-preload[PID]: "
    Line& operator<<(const char* s);
    Line& operator<<(long v);
    Line& operator<<(const Addr& a);  // "10.0.0.1:80" or "[fd00::1]:80"
    // "ECONNREFUSED (Connection refused)".
    Line& err(int code);
    void write();  // the line and a newline, to fd 2

private:
    char buf_[512];
    std::size_t n_ = 0;
};

}  // namespace egress::preload
