/* Compiled as C99 with warnings as errors: the public headers are valid C. */
#include "egress.h"
#include "egress_proto.h"

#include <stddef.h>

/* Connects through the C ABI; returns the descriptor or -1 (see reply). */
int c_abi_connect(const char* socket_path, const char* address, uint16_t port, egress_reply* reply) {
    egress_reply open_error;
    egress_client* client = egress_open(socket_path, &open_error);
    if (client == NULL) {
        *reply = open_error;
        return -1;
    }
    egress_connect_options options = {2000, EGRESS_CONNECT_TCP_NODELAY, NULL};
    int fd = egress_connect(client, address, port, &options, reply);
    egress_close(client);
    return fd;
}

/* The same for a connected UDP socket (EGRESS_OPTION_UDP). */
int c_abi_connect_udp(const char* socket_path, const char* address, uint16_t port, egress_reply* reply) {
    egress_reply open_error;
    egress_client* client = egress_open(socket_path, &open_error);
    if (client == NULL) {
        *reply = open_error;
        return -1;
    }
    egress_connect_options options = {2000, EGRESS_OPTION_UDP, NULL};
    int fd = egress_connect(client, address, port, &options, reply);
    egress_close(client);
    return fd;
}
