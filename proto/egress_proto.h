/*
 * egressd wire protocol, version 1: constants shared by every implementation.
 *
 * Plain C (C99), no structs on the wire: every multi-byte integer is
 * little-endian and read byte by byte, so the header is usable unchanged from
 * C, C++, Rust (bindgen) and Go (cgo). proto/PROTOCOL.md is the normative text.
 */
#ifndef EGRESS_PROTO_H
#define EGRESS_PROTO_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Header: magic(4) version(1) type(1) flags(2) request_id(8) payload_len(4). */
#define EGRESS_MAGIC 0x53524745u /* bytes 'E' 'G' 'R' 'S' read as a LE u32 */
#define EGRESS_VERSION 1u
#define EGRESS_HEADER_SIZE 20u

/* Largest datagram either side sends; larger requests are refused (EMSGSIZE).
 * The one exception is STATUS_REPLY, up to EGRESS_MAX_STATUS_REPLY bytes. */
#define EGRESS_MAX_DATAGRAM 4096u
#define EGRESS_MAX_STATUS_REPLY 196608u

/* Message types. A reply's type is its request's type | 0x80. */
#define EGRESS_MSG_CONNECT 0x01u
#define EGRESS_MSG_CONNECT_REPLY 0x81u
#define EGRESS_MSG_STATUS 0x02u       /* no fields */
#define EGRESS_MSG_STATUS_REPLY 0x82u
/* Reply to a request whose version or type this daemon does not speak. */
#define EGRESS_MSG_ERROR_REPLY 0xFFu

/* Header flags. Requests must send 0. */
#define EGRESS_HDR_FLAG_FD_ATTACHED 0x0001u /* reply carries one SCM_RIGHTS fd */

/* Field types: each field is type(u16) length(u16) value(length bytes). */
#define EGRESS_FIELD_DEST 0x0001u        /* endpoint: where to connect */
#define EGRESS_FIELD_DEST_HOST 0x0002u   /* host name (ASCII) then port (LE u16); instead of DEST */
#define EGRESS_FIELD_TIMEOUT_MS 0x0003u  /* u32, 0 = daemon default */
#define EGRESS_FIELD_CONNECT_FLAGS 0x0004u /* u32, EGRESS_CONNECT_* bits */
#define EGRESS_FIELD_POOL 0x0005u        /* UTF-8, 1..EGRESS_MAX_NAME bytes */
#define EGRESS_FIELD_TRANSPORT 0x0006u   /* u32 IP protocol number, EGRESS_TRANSPORT_*; absent = TCP */
#define EGRESS_FIELD_STATUS 0x0010u      /* u32 errno, 0 = success */
#define EGRESS_FIELD_ERROR_NAME 0x0011u  /* ASCII errno name, "ECONNREFUSED" */
#define EGRESS_FIELD_MESSAGE 0x0012u     /* UTF-8 human-readable reason */
#define EGRESS_FIELD_LOCAL 0x0013u       /* endpoint: the socket's local side */
#define EGRESS_FIELD_REMOTE 0x0014u      /* endpoint: the socket's peer */
#define EGRESS_FIELD_ATTEMPTS 0x0015u    /* u32 connect attempts made */
#define EGRESS_FIELD_CONNECT_US 0x0016u  /* u64 connect latency, microseconds */
#define EGRESS_FIELD_JSON 0x0017u        /* UTF-8 JSON; several concatenate in order */
#define EGRESS_FIELD_ADDRESSES 0x0018u   /* u32 addresses of a host name a connect was tried to */
#define EGRESS_FIELD_RESOLVE_US 0x0019u  /* u64 time spent resolving a host name, microseconds */

#define EGRESS_FIELD_HEADER_SIZE 4u
/* Endpoint value: address bytes in network order, then the port as LE u16. */
#define EGRESS_ENDPOINT_V4_SIZE 6u
#define EGRESS_ENDPOINT_V6_SIZE 18u
#define EGRESS_MAX_NAME 64u
/* DEST_HOST: a name of 1..254 bytes (253 without the final dot), then the port. */
#define EGRESS_MAX_HOST_NAME 254u
#define EGRESS_MAX_TEXT 512u

/* TRANSPORT values: the IP protocol numbers (IPPROTO_TCP, IPPROTO_UDP). */
#define EGRESS_TRANSPORT_TCP 6u
#define EGRESS_TRANSPORT_UDP 17u

/* CONNECT flags. */
#define EGRESS_CONNECT_TCP_NODELAY 0x00000001u /* set TCP_NODELAY before handoff */
#define EGRESS_CONNECT_BLOCKING 0x00000002u    /* hand off in blocking mode */
/* Adopt mode: connect the one socket attached to the request (SCM_RIGHTS)
 * instead of a new one; nothing is handed back. Not with BLOCKING. */
#define EGRESS_CONNECT_ADOPT 0x00000004u
#define EGRESS_CONNECT_KNOWN_FLAGS 0x00000007u

#ifdef __cplusplus
}
#endif

#endif /* EGRESS_PROTO_H */
