// Assertions shared by the unit tests: "this failed with that errno, and the
// message says why".
#pragma once

#include <gtest/gtest.h>

#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>

#include "result.hpp"

namespace egress::test {

// Succeeds when `e` is set, has `code`, and its message contains every word.
inline testing::AssertionResult IsError(const std::optional<Error>& e, int code,
                                        std::initializer_list<std::string_view> words = {}) {
    if (!e) return testing::AssertionFailure() << "succeeded, expected " << errno_name(code);
    if (e->code != code)
        return testing::AssertionFailure() << "failed with " << errno_name(e->code) << " ('" << e->message
                                           << "'), expected " << errno_name(code);
    if (e->message.empty()) return testing::AssertionFailure() << "failed with an empty message";
    for (const auto w : words)
        if (e->message.find(w) == std::string::npos)
            return testing::AssertionFailure() << "message '" << e->message << "' does not mention '" << w << "'";
    return testing::AssertionSuccess() << errno_name(code) << ": " << e->message;
}

template <class T>
testing::AssertionResult IsError(const Result<T>& r, int code, std::initializer_list<std::string_view> words = {}) {
    return IsError(r.ok() ? std::nullopt : std::optional<Error>(r.error()), code, words);
}

// Succeeds when `r` holds a value; otherwise shows the error.
template <class T>
testing::AssertionResult IsOk(const Result<T>& r) {
    if (r.ok()) return testing::AssertionSuccess();
    return testing::AssertionFailure() << errno_name(r.error().code) << ": " << r.error().message;
}

}  // namespace egress::test
