#include "listener.hpp"

#include <spdlog/spdlog.h>
#include <systemd/sd-daemon.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <vector>
#include <stdexcept>

#include "codec.hpp"
#include "handoff/handoff.hpp"

namespace egress {
namespace {

// After an accept failure the reserve cannot absorb, wait this long before
// trying again rather than spin on a listening socket that stays readable.
constexpr auto kAcceptBackoff = std::chrono::milliseconds(100);
constexpr int kAcceptBudget = 64;
// NGROUPS_MAX: no process has more supplementary groups.
constexpr std::size_t kMaxPeerGroups = 65536;

sockaddr_un unix_address(const std::string& path) {
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    if (path.size() >= sizeof a.sun_path)
        throw std::runtime_error("socket path '" + path + "' is longer than " +
                                 std::to_string(sizeof a.sun_path - 1) + " bytes");
    std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
    return a;
}

std::string sys_error(const std::string& what) { return what + ": " + std::strerror(errno); }

// Decides what to do with something already at `path`.
void clear_stale_socket(Syscalls& sys, const std::string& path) {
    struct stat st {};
    if (lstat(path.c_str(), &st) != 0) {
        if (errno == ENOENT) return;
        throw std::runtime_error(sys_error("cannot inspect " + path));
    }
    if (S_ISLNK(st.st_mode)) throw std::runtime_error(path + " is a symbolic link; refusing to follow it");
    if (!S_ISSOCK(st.st_mode)) throw std::runtime_error(path + " exists and is not a socket; refusing to replace it");
    const auto made = sys.socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (!made.ok()) throw std::runtime_error(path + " exists and cannot be probed: socket(): " + errno_text(made.err));
    const UniqueFd probe(static_cast<int>(made.value));
    const auto a = unix_address(path);
    const auto r = sys.connect(probe.get(), reinterpret_cast<const sockaddr*>(&a), sizeof a);
    if (r.ok()) throw std::runtime_error("another egressd is already listening on " + path);
    if (r.err != ECONNREFUSED) throw std::runtime_error(path + " exists and cannot be probed: " + errno_text(r.err));
    if (::unlink(path.c_str()) != 0) throw std::runtime_error(sys_error("cannot remove stale socket " + path));
    spdlog::info("replaced stale socket {} left by a daemon that is gone", path);
}

// Gives the socket file just bound at `path` its owner and group. The file is
// opened without following a symlink and checked to be the socket egressd
// created (a socket, owned by egressd's user, with no other link) before the
// change goes through that descriptor: a path swapped in meanwhile (a
// symlink, another file, a hard link to someone else's socket) is refused,
// never chowned.
void set_owner(const std::string& path, std::optional<std::uint32_t> owner, std::optional<std::uint32_t> group) {
    if (!owner && !group) return;
    UniqueFd node(::open(path.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
    if (!node) throw std::runtime_error(sys_error("cannot open " + path + " to set its owner"));
    struct stat st {};
    if (::fstat(node.get(), &st) != 0) throw std::runtime_error(sys_error("cannot inspect " + path));
    if (!S_ISSOCK(st.st_mode) || st.st_uid != ::geteuid() || st.st_nlink != 1)
        throw std::runtime_error(path + " was replaced after egressd bound it; refusing to change its owner");
    const auto uid = owner ? static_cast<uid_t>(*owner) : static_cast<uid_t>(-1);
    const auto gid = group ? static_cast<gid_t>(*group) : static_cast<gid_t>(-1);
    if (::fchownat(node.get(), "", uid, gid, AT_EMPTY_PATH) != 0)
        throw std::runtime_error(sys_error("cannot set the owner of " + path + " to " +
                                           (owner ? std::to_string(*owner) : "(unchanged)") + ":" +
                                           (group ? std::to_string(*group) : "(unchanged)")));
}

// Who is at the other end of an accepted connection, as the kernel recorded
// it when the client connected: SO_PEERCRED and SO_PEERGROUPS.
Result<Credentials> peer_credentials(Syscalls& sys, int fd) {
    ucred cred{};
    socklen_t len = sizeof cred;
    auto got = sys.getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len);
    if (!got.ok() || len != sizeof cred)
        return Error{got.ok() ? EPROTO : got.err, "SO_PEERCRED: " + (got.ok() ? "short answer" : errno_name(got.err))};
    Credentials peer{cred.uid, cred.gid, cred.pid, {}};
    // Most peers have a few groups; on ERANGE the kernel says how many.
    std::vector<gid_t> groups(32);
    for (int round = 0; round < 2; ++round) {
        len = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
        got = sys.getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &len);
        if (got.ok() || got.err != ERANGE || len / sizeof(gid_t) > kMaxPeerGroups) break;
        groups.resize(len / sizeof(gid_t));
    }
    if (!got.ok()) return Error{got.err, "SO_PEERGROUPS: " + errno_name(got.err)};
    groups.resize(std::min<std::size_t>(len / sizeof(gid_t), groups.size()));
    peer.groups.assign(groups.begin(), groups.end());
    return peer;
}

}  // namespace

std::string default_socket_path() {
    if (const char* dir = std::getenv("RUNTIME_DIRECTORY"); dir && *dir) {
        // systemd may list several directories separated by ':'; use the first.
        std::string d(dir);
        return d.substr(0, d.find(':')) + "/egressd.sock";
    }
    return "/run/egressd/egressd.sock";
}

UniqueFd open_listen_socket(Syscalls& sys, const std::string& path, unsigned mode,
                            std::optional<std::uint32_t> owner, std::optional<std::uint32_t> group) {
    const auto a = unix_address(path);
    const auto parent = std::filesystem::path(path).parent_path();
    std::error_code ec;
    if (!parent.empty() && !std::filesystem::exists(parent, ec)) {
        std::filesystem::create_directories(parent, ec);
        if (ec) throw std::runtime_error("cannot create directory " + parent.string() + ": " + ec.message());
    }
    clear_stale_socket(sys, path);
    const auto made = sys.socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (!made.ok()) throw std::runtime_error("socket(AF_UNIX, SOCK_SEQPACKET): " + errno_text(made.err));
    UniqueFd fd(static_cast<int>(made.value));
    // bind() creates the file with the socket's own mode less the umask: set
    // the mode on the descriptor and clear the umask, so the file has its
    // final mode from its first instant and no chmod by path (which would
    // follow a symlink swapped in meanwhile) is needed. Start-up runs on one
    // thread, so no one else sees the umask change.
    if (::fchmod(fd.get(), mode) != 0) throw std::runtime_error(sys_error("cannot set the mode of the socket"));
    const auto umask_before = ::umask(0);
    const auto bound = sys.bind(fd.get(), reinterpret_cast<const sockaddr*>(&a), sizeof a);
    ::umask(umask_before);
    if (!bound.ok()) throw std::runtime_error("cannot bind " + path + ": " + errno_text(bound.err));
    set_owner(path, owner, group);  // on failure the file stays, a stale socket the next start replaces
    if (const auto r = sys.listen(fd.get(), SOMAXCONN); !r.ok())
        throw std::runtime_error("cannot listen on " + path + ": " + errno_text(r.err));
    return fd;
}

std::optional<PassedSocket> passed_listen_socket(Syscalls& sys) {
    // 1: unset LISTEN_FDS and LISTEN_PID, which are meant for this process only.
    const int n = sd_listen_fds(1);
    if (n < 0) throw std::runtime_error(std::string("cannot read the sockets systemd passed (LISTEN_FDS): ") +
                                        std::strerror(-n));
    if (n == 0) return std::nullopt;
    if (n > 1)
        throw std::runtime_error("systemd passed " + std::to_string(n) +
                                 " sockets (LISTEN_FDS); egressd serves exactly one (one ListenSequentialPacket= "
                                 "in egressd.socket)");
    UniqueFd fd(SD_LISTEN_FDS_START);
    const int ok = sd_is_socket_unix(fd.get(), SOCK_SEQPACKET, 1, nullptr, 0);
    if (ok < 0) throw std::runtime_error(std::string("cannot inspect the passed socket: ") + std::strerror(-ok));
    if (ok == 0)
        throw std::runtime_error("the passed socket (descriptor 3) is not an AF_UNIX SOCK_SEQPACKET socket that "
                                 "listens; egressd.socket needs ListenSequentialPacket=");
    const int flags = ::fcntl(fd.get(), F_GETFL);
    if (flags < 0 || ::fcntl(fd.get(), F_SETFL, flags | O_NONBLOCK) != 0 || ::fcntl(fd.get(), F_SETFD, FD_CLOEXEC) != 0)
        throw std::runtime_error(sys_error("cannot make the passed socket non-blocking and close-on-exec"));
    sockaddr_un a{};
    socklen_t len = sizeof a;
    std::string path;
    if (sys.getsockname(fd.get(), reinterpret_cast<sockaddr*>(&a), &len).ok() && len > sizeof(sa_family_t)) {
        const std::size_t n_path = len - sizeof(sa_family_t);
        if (a.sun_path[0] == '\0') path = "@" + std::string(a.sun_path + 1, n_path - 1);
        else path = std::string(a.sun_path, strnlen(a.sun_path, n_path));
    }
    return PassedSocket{std::move(fd), path};
}

Listener::Listener(Broker& broker, UniqueFd listen_fd, std::string path, bool owns_path)
    : broker_(broker), ctx_(broker.home()), sock_(ctx_.io), retry_(ctx_.io), path_(std::move(path)),
      owns_path_(owns_path) {
    sock_.assign(listen_fd.release());
    take_reserve();
}

Listener::~Listener() { stop(); }

void Listener::start() { accept_some(); }

void Listener::accept_some() {
    if (!sock_.is_open()) return;  // a drain has closed it
    auto& shared = broker_.shared();
    for (int i = 0; i < kAcceptBudget && !stopped_; ++i) {
        auto r = ctx_.sys.accept4(sock_.native_handle(), SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (!r.ok() && (r.err == EMFILE || r.err == ENFILE) && reserve_) {
            // accept() wants a descriptor before it looks at the backlog: on
            // the reserve, find out whether a client waits, and refuse it.
            const int short_of = r.err;
            reserve_.reset();
            r = ctx_.sys.accept4(sock_.native_handle(), SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (r.ok()) {
                ctx_.metrics.accept_errors.Increment();
                ctx_.log_event(spdlog::level::warn, "accept/" + errno_name(short_of),
                               "accept failed: {}: {}; refusing new clients until descriptors free up",
                               errno_name(short_of), errno_text(short_of));
                ctx_.metrics.clients_refused.Increment();
                refuse(UniqueFd(static_cast<int>(r.value)), short_of,
                       "egressd is out of descriptors (" + errno_name(short_of) + "); try again later");
            }
            take_reserve();  // may fail: a later failing accept then pauses
            if (r.ok()) continue;
        }
        if (!r.ok()) {
            switch (r.err) {
            case EAGAIN:
                if (draining_) return closed_for_good();  // the backlog is empty: no one else comes
                sock_.async_wait(asio::posix::stream_descriptor::wait_read, [this](const error_code& ec) {
                    if (!ec && !stopped_) accept_some();
                });
                return;
            case EINTR:
            case ECONNABORTED:
                continue;
            default:  // EMFILE, ENFILE without a reserve; ENOBUFS, ENOMEM
                ctx_.metrics.accept_errors.Increment();
                if (draining_) {
                    ctx_.log_event(spdlog::level::warn, "accept/" + errno_name(r.err),
                                   "accept failed while draining: {}: {}; the clients left in the backlog are reset",
                                   errno_name(r.err), errno_text(r.err));
                    return closed_for_good();
                }
                ctx_.log_event(spdlog::level::warn, "accept/" + errno_name(r.err),
                               "accept failed: {}: {}; pausing accepts for {} ms", errno_name(r.err),
                               errno_text(r.err), kAcceptBackoff.count());
                return pause_accepting();
            }
        }
        UniqueFd client(static_cast<int>(r.value));
        const auto& config = *ctx_.now.config;
        if (const auto open = shared.stats.clients_connected.get(); open >= config.limits.max_clients) {
            ctx_.metrics.clients_refused.Increment();
            refuse(std::move(client), EAGAIN,
                   "egressd already serves " + std::to_string(open) + " clients (limits.max_clients)");
            continue;
        }
        auto peer = peer_credentials(ctx_.sys, client.get());
        if (!peer) {
            ctx_.metrics.client_dropped("no_credentials").Increment();
            refuse(std::move(client), EACCES, "egressd cannot read the credentials of this connection (" +
                                                  peer.error().message + ")");
            continue;
        }
        const auto& rule = config.clients.rule_for(*peer);
        if (auto q = shared.quotas.check_connection(peer->uid, rule.name, rule.limits)) {
            ctx_.metrics.quota_refused(rule.name, q->limit);
            refuse(std::move(client), EAGAIN, q->message);
            continue;
        }
        auto quota = shared.quotas.open(peer->uid);
        broker_.hand_over(std::move(client), std::move(*peer), std::move(quota));
    }
    if (!stopped_) asio::post(ctx_.io, [this] { if (!stopped_) accept_some(); });
}

void Listener::pause_accepting() {
    retry_.expires_after(kAcceptBackoff);
    retry_.async_wait([this](const error_code& ec) {
        if (ec || stopped_) return;
        if (!reserve_) take_reserve();
        accept_some();
    });
}

void Listener::take_reserve() {
    const auto r = ctx_.sys.socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (r.ok()) reserve_ = UniqueFd(static_cast<int>(r.value));
}

void Listener::refuse(UniqueFd client, int err, const std::string& why) {
    ctx_.log_event(spdlog::level::warn, "refused", "refused a client: {}", why);
    // Request id 0: the client has not sent anything yet.
    const auto bytes = proto::encode_error_reply(0, proto::ErrorReply{static_cast<std::uint32_t>(err), errno_name(err), why});
    send_datagram(ctx_.sys, client.get(), bytes, -1);
    close_after_reply(ctx_.sys, std::move(client));
}

void Listener::drain() {
    if (stopped_ || draining_) return;
    draining_ = true;
    retry_.cancel();
    error_code ignored;
    sock_.cancel(ignored);
    if (owns_path_) {
        // No new client finds the socket from now on; a successor may bind
        // the path at once. Those already in the backlog are taken in (and
        // answered) rather than reset when the socket closes.
        ::unlink(path_.c_str());
        owns_path_ = false;
        accept_some();
    } else {
        // The backlog belongs to the socket's holder: the next egressd serves it.
        closed_for_good();
    }
}

void Listener::closed_for_good() {
    error_code ignored;
    sock_.close(ignored);
    broker_.no_more_clients();
}

void Listener::stop() {
    if (stopped_) return;
    stopped_ = true;
    error_code ignored;
    retry_.cancel();
    sock_.close(ignored);
    if (owns_path_) ::unlink(path_.c_str());
}

}  // namespace egress
