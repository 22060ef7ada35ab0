/*
 * libegress C ABI: ask egressd for connected sockets from C, Rust, Go, ...
 *
 * Every function is safe to call with the client from one thread at a time.
 * Descriptors returned are owned by the caller (close them).
 * Installed as <egress/egress.h>; link with `pkg-config --libs egress`.
 */
#ifndef EGRESS_H
#define EGRESS_H

#include <stdint.h>

#include "egress_export.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct egress_client egress_client;

/* An option bit of egress_connect_options.flags beside the EGRESS_CONNECT_*
 * ones: a connected UDP socket instead of a TCP one (CONNECT's TRANSPORT 17).
 * It never goes on the wire as a flag. */
#define EGRESS_OPTION_UDP 0x80000000u

typedef struct egress_connect_options {
    uint32_t timeout_ms; /* 0: egressd's default */
    uint32_t flags;      /* EGRESS_CONNECT_* from egress_proto.h, and EGRESS_OPTION_UDP */
    const char* pool;    /* NULL or "": egressd's route decides */
} egress_connect_options;

typedef struct egress_reply {
    int status;             /* 0, or the errno egressd reported */
    char error_name[64];    /* "ECONNREFUSED"; empty on success */
    char message[512];      /* human-readable reason; empty on success */
    char local[64];         /* "192.0.2.1:40000" or "[2001:db8::1]:40000" */
    char remote[64];
    char pool[65];
    uint32_t attempts;
    uint64_t connect_us;
} egress_reply;

/* Connects to egressd (socket_path NULL: $EGRESS_SOCKET, else
 * /run/egressd/egressd.sock). NULL on failure, with the reason in *error
 * when error is not NULL. */
EGRESS_API egress_client* egress_open(const char* socket_path, egress_reply* error);
EGRESS_API void egress_close(egress_client* client);

/* Blocking connect to address and port. address is an IPv4 or IPv6 literal
 * or a host name, which egressd resolves (Happy Eyeballs: out->remote says
 * which address it reached). Returns the connected descriptor, or -1 with
 * out->status set. */
EGRESS_API int egress_connect(egress_client* client, const char* address, uint16_t port,
                   const egress_connect_options* options, egress_reply* out);

/* Pipelining: egress_submit sends a request and stores its id; egress_next
 * waits for any reply, stores which id it answers, and returns the
 * descriptor or -1 (out->status set). */
EGRESS_API int egress_submit(egress_client* client, const char* address, uint16_t port,
                  const egress_connect_options* options, uint64_t* request_id, egress_reply* error);
EGRESS_API int egress_next(egress_client* client, uint64_t* request_id, egress_reply* out);

/* Adopt mode: asks egressd to connect fd, the caller's own non-blocking TCP
 * socket, to address (an IP literal, not a name) and port; fd stays the caller's. Returns 0 when it is
 * connected, or -1 with out->status set: EINPROGRESS when the connect is
 * under way (wait until fd is writable, then read SO_ERROR, as after
 * connect(2)), else the errno egressd reported. out->local is the local
 * address egressd chose. */
EGRESS_API int egress_adopt(egress_client* client, int fd, const char* address, uint16_t port,
                 const egress_connect_options* options, egress_reply* out);

/* The descriptor to poll for readability before egress_next. */
EGRESS_API int egress_fd(const egress_client* client);

#ifdef __cplusplus
}
#endif

#endif /* EGRESS_H */
