// Errors as values for the request path: an errno plus a human-readable reason.
#pragma once

#include <string>
#include <utility>
#include <variant>

#include "egress_export.h"

namespace egress {

// A failure a client can be told about: `code` is a Linux errno value
// (EBADMSG, ECONNREFUSED, ...), `message` says precisely what went wrong.
struct Error {
    int code = 0;
    std::string message;
};

// Either a T or an Error. std::expected is not available with g++ 12.
template <class T>
class Result {
public:
    // Built in place: a value moves once, not twice.
    Result(T&& value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit by design
    Result(const T& value) : v_(std::in_place_index<0>, value) {}        // NOLINT: implicit by design
    Result(Error error) : v_(std::move(error)) {}                          // NOLINT: implicit by design

    bool ok() const { return v_.index() == 0; }
    explicit operator bool() const { return ok(); }
    T& value() { return std::get<0>(v_); }
    const T& value() const { return std::get<0>(v_); }
    T& operator*() { return value(); }
    const T& operator*() const { return value(); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }
    const Error& error() const { return std::get<1>(v_); }

private:
    std::variant<T, Error> v_;
};

// "ECONNREFUSED" for ECONNREFUSED; "E<number>" for a value libc cannot name.
EGRESS_API std::string errno_name(int code);
// "Connection refused" for ECONNREFUSED.
EGRESS_API std::string errno_text(int code);

}  // namespace egress
