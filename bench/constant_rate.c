/* constant_rate: an open-loop (constant-rate) HTTP/1.1 load client for `make bench`.
 *
 *   constant_rate PORT PATH BODYFILE RATE SECONDS WARMUP_SECONDS CONNECTIONS
 *
 * Sends POST PATH (JSON body read from BODYFILE) to 127.0.0.1:PORT at RATE requests/s for
 * WARMUP_SECONDS + SECONDS, over CONNECTIONS keep-alive connections opened up front.
 *
 * How it measures. Request k has an intended start time t0 + k/RATE, fixed before the run: a
 * timerfd ticks at that period and every tick makes one request due (several if the client was
 * late). A due request goes out at once on an idle connection, or waits in a queue for the next one
 * to finish. Its latency is taken from its intended start to the last byte of its answer, so a slow
 * answer that holds up the requests behind it is charged to them too (no coordinated omission:
 * this is what wrk2 does, and what a closed-loop client like wrk hides). Only requests intended
 * after the warm-up are counted. The client's own lateness (send time minus intended time) and its
 * CPU use are reported, so that a saturated client can be told apart from a slow server.
 *
 * Output: one line `CR key=value ...` on stdout (latencies in microseconds). Exit 0 when the run
 * happened (even with failed requests, which are counted), 1 on a usage or connection error.
 * Linux only (epoll, timerfd). Build: cc -O2 -o constant_rate constant_rate.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    int fd;
    int busy;
    uint64_t intended; /* intended start of the request in flight (ns, CLOCK_MONOTONIC) */
    char *buf;
    size_t len, cap;
} conn_t;

static uint16_t port;
static char *request;
static size_t request_len;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t cpu_ns(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ((uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec)) * 1000000000ull
        + (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000ull;
}

static int open_conn(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) { close(fd); return -1; }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

/* 0: incomplete, 1: a complete answer of exactly c->len bytes (status in *status), -1: malformed
 * or more bytes than one answer (pipelining is never used, so either is an error). */
static int parse_response(const conn_t *c, int *status) {
    const char *b = c->buf;
    size_t n = c->len;
    const char *end = memmem(b, n, "\r\n\r\n", 4);
    if (!end) return n > 65536 ? -1 : 0;
    size_t head = (size_t)(end - b) + 4;
    if (n < 12 || memcmp(b, "HTTP/1.", 7) != 0) return -1;
    *status = atoi(b + 9);
    long content_length = -1;
    int chunked = 0;
    for (const char *line = (const char *)memchr(b, '\n', head) + 1; line < b + head - 2;) {
        const char *eol = memchr(line, '\n', (size_t)(b + head - line));
        if (!eol) break;
        if (strncasecmp(line, "content-length:", 15) == 0) content_length = strtol(line + 15, NULL, 10);
        else if (strncasecmp(line, "transfer-encoding:", 18) == 0 && memmem(line, (size_t)(eol - line), "chunked", 7)) chunked = 1;
        line = eol + 1;
    }
    if (chunked) {
        size_t p = head;
        for (;;) {
            const char *crlf = memmem(b + p, n - p, "\r\n", 2);
            if (!crlf) return 0;
            char *stop;
            unsigned long size = strtoul(b + p, &stop, 16);
            if (stop == b + p) return -1;
            p = (size_t)(crlf - b) + 2;
            if (size == 0) {
                if (n < p + 2) return 0;
                if (memcmp(b + p, "\r\n", 2) != 0) return -1; /* trailers: never sent here */
                return n == p + 2 ? 1 : -1;
            }
            if (n < p + size + 2) return 0;
            p += size + 2;
        }
    }
    if (content_length < 0) return -1;
    if (n < head + (size_t)content_length) return 0;
    return n == head + (size_t)content_length ? 1 : -1;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(const uint64_t *v, size_t n, double p) { /* nearest rank, in microseconds */
    if (n == 0) return -1;
    size_t i = (size_t)(p / 100.0 * (double)n + 0.999999);
    if (i < 1) i = 1;
    if (i > n) i = n;
    return (double)v[i - 1] / 1000.0;
}

int main(int argc, char **argv) {
    if (argc != 8) {
        fprintf(stderr, "usage: %s PORT PATH BODYFILE RATE SECONDS WARMUP_SECONDS CONNECTIONS\n", argv[0]);
        return 1;
    }
    port = (uint16_t)atoi(argv[1]);
    const char *path = argv[2];
    double rate = atof(argv[4]), seconds = atof(argv[5]), warmup = atof(argv[6]);
    int nconn = atoi(argv[7]);
    if (port == 0 || rate <= 0 || seconds <= 0 || warmup < 0 || nconn < 1) { fprintf(stderr, "constant_rate: bad arguments\n"); return 1; }

    FILE *f = fopen(argv[3], "rb");
    if (!f) { perror(argv[3]); return 1; }
    char body[65536];
    size_t body_len = fread(body, 1, sizeof body, f);
    fclose(f);
    request = malloc(body_len + 512);
    request_len = (size_t)snprintf(request, 512,
        "POST %s HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
        path, port, body_len);
    memcpy(request + request_len, body, body_len);
    request_len += body_len;

    uint64_t period = (uint64_t)(1e9 / rate);
    uint64_t total = (uint64_t)((seconds + warmup) * rate), counted_from = (uint64_t)(warmup * rate);
    uint64_t *lat = calloc(total, sizeof *lat), *lag = calloc(total, sizeof *lag);
    uint64_t *queue = calloc(total, sizeof *queue); /* intended times of due requests with no idle connection */
    conn_t *conns = calloc((size_t)nconn, sizeof *conns);
    int *idle = calloc((size_t)nconn, sizeof *idle);
    if (!lat || !lag || !queue || !conns || !idle) { fprintf(stderr, "constant_rate: out of memory\n"); return 1; }

    int ep = epoll_create1(0);
    int nidle = 0;
    for (int i = 0; i < nconn; i++) {
        conns[i].fd = open_conn();
        if (conns[i].fd < 0) { fprintf(stderr, "constant_rate: cannot connect to 127.0.0.1:%u: %s\n", port, strerror(errno)); return 1; }
        conns[i].cap = 65536;
        conns[i].buf = malloc(conns[i].cap);
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, conns[i].fd, &ev);
        idle[nidle++] = i;
    }
    int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
    uint64_t t0 = now_ns() + 20000000ull; /* first request in 20 ms */
    struct itimerspec its = {
        .it_value = {.tv_sec = (time_t)(t0 / 1000000000ull), .tv_nsec = (long)(t0 % 1000000000ull)},
        .it_interval = {.tv_sec = (time_t)(period / 1000000000ull), .tv_nsec = (long)(period % 1000000000ull)},
    };
    timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
    struct epoll_event tev = {.events = EPOLLIN, .data.u32 = UINT32_MAX};
    epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &tev);

    uint64_t scheduled = 0, sent = 0, done = 0, ok = 0, failed = 0, nlat = 0, nlag = 0;
    size_t qhead = 0, qtail = 0, qmax = 0;
    uint64_t cpu0 = 0, wall0 = 0;
    uint64_t deadline = 0; /* set once everything is scheduled: answers get 5 s more */

    #define SEND(ci, t) do { \
        conn_t *c_ = &conns[ci]; \
        uint64_t s_ = now_ns(); \
        ssize_t w_ = write(c_->fd, request, request_len); \
        c_->busy = 1; c_->intended = (t); c_->len = 0; sent++; \
        if ((t) >= t0 + counted_from * period) lag[nlag++] = s_ > (t) ? s_ - (t) : 0; \
        if (w_ != (ssize_t)request_len) { c_->busy = 2; /* failed: reported when it is read */ } \
    } while (0)

    while (done < total) {
        struct epoll_event evs[64];
        int timeout = -1;
        if (deadline) {
            uint64_t t = now_ns();
            if (t >= deadline) break;
            timeout = (int)((deadline - t) / 1000000ull) + 1;
        }
        int n = epoll_wait(ep, evs, 64, timeout);
        if (n < 0) { if (errno == EINTR) continue; perror("epoll_wait"); return 1; }
        for (int e = 0; e < n; e++) {
            if (evs[e].data.u32 == UINT32_MAX) {
                uint64_t ticks = 0;
                if (read(tfd, &ticks, sizeof ticks) != sizeof ticks) continue;
                for (uint64_t k = 0; k < ticks && scheduled < total; k++) {
                    uint64_t t = t0 + scheduled * period;
                    if (scheduled == counted_from) { cpu0 = cpu_ns(); wall0 = now_ns(); }
                    scheduled++;
                    if (nidle > 0) { int ci = idle[--nidle]; SEND(ci, t); }
                    else { queue[qtail++] = t; if (qtail - qhead > qmax) qmax = qtail - qhead; }
                }
                if (scheduled == total && !deadline) {
                    deadline = now_ns() + 5000000000ull;
                    struct itimerspec off = {0};
                    timerfd_settime(tfd, 0, &off, NULL);
                }
                continue;
            }
            int ci = (int)evs[e].data.u32;
            conn_t *c = &conns[ci];
            int finished = 0, status = 0;
            for (;;) {
                if (c->len == c->cap) { c->cap *= 2; c->buf = realloc(c->buf, c->cap); }
                ssize_t r = read(c->fd, c->buf + c->len, c->cap - c->len);
                if (r > 0) { c->len += (size_t)r; continue; }
                if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
                finished = -1; /* EOF or error: the connection is gone */
                break;
            }
            if (!c->busy) {
                if (finished < 0 || c->len > 0) { /* closed while idle, or bytes nobody asked for */
                    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL); close(c->fd);
                    c->fd = open_conn(); c->len = 0;
                    if (c->fd < 0) { fprintf(stderr, "constant_rate: reconnect failed\n"); return 1; }
                    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)ci};
                    epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
                }
                continue;
            }
            int parsed = c->busy == 2 ? -1 : parse_response(c, &status);
            if (parsed == 0 && finished == 0) continue;
            uint64_t t = now_ns();
            done++;
            int good = parsed == 1 && status == 200;
            if (good) ok++; else failed++;
            if (c->intended >= t0 + counted_from * period && good) lat[nlat++] = t - c->intended;
            c->busy = 0; c->len = 0;
            if (parsed != 1 || finished < 0) { /* start again on a fresh connection */
                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL); close(c->fd);
                c->fd = open_conn();
                if (c->fd < 0) { fprintf(stderr, "constant_rate: reconnect failed\n"); return 1; }
                struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)ci};
                epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
            }
            if (qhead < qtail) { uint64_t q = queue[qhead++]; SEND(ci, q); }
            else idle[nidle++] = ci;
        }
    }
    uint64_t wall = now_ns() - wall0, cpu = cpu_ns() - cpu0;
    uint64_t unanswered = total - done;
    qsort(lat, nlat, sizeof *lat, cmp_u64);
    qsort(lag, nlag, sizeof *lag, cmp_u64);
    printf("CR rate=%.0f sent=%llu counted=%llu ok=%llu failed=%llu unanswered=%llu achieved_rps=%.1f "
           "p50_us=%.1f p90_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f "
           "send_lag_p99_us=%.1f send_lag_max_us=%.1f queue_max=%zu client_cpu_pct=%.1f\n",
        rate, (unsigned long long)sent, (unsigned long long)nlat, (unsigned long long)ok, (unsigned long long)failed, (unsigned long long)unanswered,
        wall > 0 ? (double)nlat * 1e9 / (double)wall : 0.0,
        pct(lat, nlat, 50), pct(lat, nlat, 90), pct(lat, nlat, 99), pct(lat, nlat, 99.9), nlat ? (double)lat[nlat - 1] / 1000.0 : -1,
        pct(lag, nlag, 99), nlag ? (double)lag[nlag - 1] / 1000.0 : -1, qmax,
        wall > 0 ? (double)cpu * 100.0 / (double)wall : 0.0);
    return 0;
}
