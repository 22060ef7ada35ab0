/* Compiled as C99 with warnings as errors: the public headers are valid C. */
#include "egress.h"
#include "egress_proto.h"

#include <stddef.h>

/* One blocking connect through the C ABI with these option flags; returns
 * the descriptor or -1 (see reply). */
static int connect_with(const char* socket_path, const char* address, uint16_t port, uint32_t flags,
                        egress_reply* reply) {
    egress_reply open_error;
    egress_client* client = egress_open(socket_path, &open_error);
    if (client == NULL) {
        *reply = open_error;
        return -1;
    }
    egress_connect_options options = {2000, flags, NULL};
    int fd = egress_connect(client, address, port, &options, reply);
    egress_close(client);
    return fd;
}

int c_abi_connect(const char* socket_path, const char* address, uint16_t port, egress_reply* reply) {
    return connect_with(socket_path, address, port, EGRESS_CONNECT_TCP_NODELAY, reply);
}

/* The same for a connected UDP socket (EGRESS_OPTION_UDP). */
int c_abi_connect_udp(const char* socket_path, const char* address, uint16_t port, egress_reply* reply) {
    return connect_with(socket_path, address, port, EGRESS_OPTION_UDP, reply);
}
