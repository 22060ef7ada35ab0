// The Unix SOCK_SEQPACKET listening socket and the accept loop.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "broker/broker.hpp"
#include "unique_fd.hpp"

namespace egress {

// Creates, binds and listens on `path` (start-up only; throws
// std::runtime_error with a message for the operator). A stale socket left by
// a dead daemon is replaced; a live one, a symlink or any other file is not.
// The file gets `mode`, and `owner`/`group` when set.
UniqueFd open_listen_socket(Syscalls& sys, const std::string& path, unsigned mode,
                            std::optional<std::uint32_t> owner = {}, std::optional<std::uint32_t> group = {});

// Where the socket goes when neither config nor command line says.
std::string default_socket_path();

// A listening socket handed over by systemd (or any supervisor speaking the
// sd_listen_fds protocol: LISTEN_FDS, LISTEN_PID), and the path it is bound to.
struct PassedSocket {
    UniqueFd fd;
    std::string path;  // "" when unnamed; "@name" for an abstract address
};
// nullopt when no socket was passed. Throws std::runtime_error when one was
// but egressd cannot serve it: more than one, or not an AF_UNIX
// SOCK_SEQPACKET socket that listens.
std::optional<PassedSocket> passed_listen_socket(Syscalls& sys);

// Accepts clients on loop 0 and hands each to the Broker, which gives it a
// loop of its own; the limits on connections (limits.max_clients, a rule's
// max_connections_per_uid) and the descriptor reserve for EMFILE live here.
class Listener {
public:
    // `owns_path`: egressd created the socket file, and removes it on stop();
    // a passed socket's file belongs to whoever passed it.
    Listener(Broker& broker, UniqueFd listen_fd, std::string path, bool owns_path = true);
    ~Listener();

    void start();
    // Stops accepting and removes the socket file if it is egressd's own.
    void stop();

    // Shutdown, first step (the Broker drains the sessions): stops
    // accepting. egressd's own socket file goes at once, so that a successor
    // can bind it, and the clients already in its backlog are taken in to be
    // answered; a passed socket's backlog waits for the next egressd. Either
    // way the Broker hears no_more_clients() once the socket is closed.
    void drain();

private:
    void accept_some();
    void pause_accepting();
    void take_reserve();
    // The socket is closed for good: no client comes any more.
    void closed_for_good();
    // Sends one ERROR_REPLY (request id 0) with `err` and closes the client.
    void refuse(UniqueFd client, int err, const std::string& why);

    Broker& broker_;
    LoopContext& ctx_;  // loop 0's
    asio::posix::stream_descriptor sock_;
    asio::steady_timer retry_;
    std::string path_;
    bool owns_path_;
    // One descriptor held back so that egressd can still accept, answer and
    // close a client when it is at its open-files limit (empty while spent).
    UniqueFd reserve_;
    bool stopped_ = false;
    bool draining_ = false;
};

}  // namespace egress
