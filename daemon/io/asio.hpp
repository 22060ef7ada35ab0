// The one way this project includes Boost.Asio.
//
// <utility> must come first: with g++ 12 and -std=c++20, Boost 1.74's
// coroutine support headers use std::exchange without including it.
#pragma once

#include <utility>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

namespace egress {
namespace asio = boost::asio;
using error_code = boost::system::error_code;
}  // namespace egress
