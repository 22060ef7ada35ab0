/* egress-dropin-client: an ordinary program for `egress-bench dropin`, with no
 * egressd code in it. It makes COUNT plain blocking connect() calls to
 * ADDRESS:PORT (IPv4) one after another, holds every socket, prints one JSON
 * line in the form egress-bench's workers report (WorkerResult::to_json), and
 * then keeps its sockets until its standard input closes.
 *
 * usage: egress-dropin-client ADDRESS PORT COUNT
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_ERRNO 4096
#define MAX_SOURCES 16

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static void print_list(const char *name, const double *v, unsigned long n) {
    printf("\"%s\":[", name);
    for (unsigned long i = 0; i < n; ++i) printf("%s%.4f", i ? "," : "", v[i]);
    printf("]");
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s ADDRESS PORT COUNT\n", argv[0]);
        return 2;
    }
    struct sockaddr_in dest;
    memset(&dest, 0, sizeof dest);
    dest.sin_family = AF_INET;
    dest.sin_port = htons((unsigned short)atoi(argv[2]));
    const unsigned long count = strtoul(argv[3], NULL, 10);
    if (inet_pton(AF_INET, argv[1], &dest.sin_addr) != 1 || count == 0) {
        fprintf(stderr, "%s: bad address or count\n", argv[0]);
        return 2;
    }
    double *even = calloc(count, sizeof *even), *odd = calloc(count, sizeof *odd);
    unsigned long n_even = 0, n_odd = 0, errored = 0;
    static unsigned long errs[MAX_ERRNO];
    static char sources[MAX_SOURCES][INET_ADDRSTRLEN];  /* local addresses seen, and their counts */
    static unsigned long per_source[MAX_SOURCES + 1];    /* the last slot: any beyond MAX_SOURCES */
    int n_sources = 0;
    if (even == NULL || odd == NULL) return 1;

    const double start = now_ms();
    for (unsigned long i = 0; i < count; ++i) {
        const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            ++errored;
            ++errs[errno < MAX_ERRNO ? errno : 0];
            continue;
        }
        const double t0 = now_ms();
        const int rc = connect(fd, (const struct sockaddr *)&dest, sizeof dest);
        const double ms = now_ms() - t0;
        if (rc != 0) {
            ++errored;
            ++errs[errno < MAX_ERRNO ? errno : 0];
            close(fd);
            continue;
        }
        struct sockaddr_in local;
        socklen_t len = sizeof local;
        getsockname(fd, (struct sockaddr *)&local, &len);
        char addr[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &local.sin_addr, addr, sizeof addr);
        int k = 0;
        while (k < n_sources && strcmp(sources[k], addr) != 0) ++k;
        if (k == n_sources && n_sources < MAX_SOURCES) strcpy(sources[n_sources++], addr);
        ++per_source[k];
        if (ntohs(local.sin_port) % 2) odd[n_odd++] = ms;
        else even[n_even++] = ms;
        /* fd stays open: the port stays in use until the end */
    }
    const double total_s = (now_ms() - start) / 1e3;

    printf("{\"attempts\":%lu,\"ok\":%lu,\"errored\":%lu,\"tries\":%lu,\"total_s\":%.6f,", count,
           n_even + n_odd, errored, count, total_s);
    print_list("lat_even_ms", even, n_even);
    printf(",");
    print_list("lat_odd_ms", odd, n_odd);
    printf(",\"errors\":{");
    int first = 1;
    for (int e = 0; e < MAX_ERRNO; ++e) {
        if (!errs[e]) continue;
        const char *name = strerrorname_np(e);
        printf("%s\"%s%s\":%lu", first ? "" : ",", name ? name : "E", name ? "" : "?", errs[e]);
        first = 0;
    }
    printf("},\"messages\":{");
    first = 1;
    for (int e = 0; e < MAX_ERRNO; ++e) {
        if (!errs[e]) continue;
        const char *name = strerrorname_np(e);
        printf("%s\"%s%s\":\"%s\"", first ? "" : ",", name ? name : "E", name ? "" : "?", strerror(e));
        first = 0;
    }
    printf("},\"sources\":{");
    for (int k = 0; k < n_sources; ++k) printf("%s\"%s\":%lu", k ? "," : "", sources[k], per_source[k]);
    if (per_source[MAX_SOURCES]) printf("%s\"other\":%lu", n_sources ? "," : "", per_source[MAX_SOURCES]);
    printf("}}\n");
    fflush(stdout);

    char c;
    while (read(0, &c, 1) > 0) {
    }
    return 0;
}
