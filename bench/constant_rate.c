/* constant_rate: an open-loop (constant-rate) HTTP/1.1 load client for `make bench`.
 *
 *   constant_rate PORT[,PORT...] PATH BODYFILE RATE SECONDS WARMUP_SECONDS CONNECTIONS [SLICE_MS]
 *
 * Sends POST PATH (JSON body read from BODYFILE) to 127.0.0.1:PORT at RATE requests/s for
 * WARMUP_SECONDS + SECONDS, over CONNECTIONS keep-alive connections opened up front.
 *
 * Several ports: the targets take turns in slices of SLICE_MS (default 200) milliseconds of the
 * schedule, round robin, each at RATE requests/s during its slices over its own CONNECTIONS
 * connections, so the machine sends RATE requests/s in all at any time. Every target is
 * measured over the whole run for SECONDS / (number of targets) in all: on a shared machine a
 * burst of load that lasts longer than a few slices falls on every target alike, instead of on
 * whichever one was measured at the time. One result line per target.
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
 * Output: one line `CR port=PORT key=value ...` per target on stdout (latencies in microseconds). Exit 0 when the run
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
    int target;
    int busy;
    uint64_t intended; /* intended start of the request in flight (ns, CLOCK_MONOTONIC) */
    char *buf;
    size_t len, cap;
} conn_t;

#define MAX_TARGETS 8

/* One target: its port, its request, its connections' idle stack, its queue of due requests
 * waiting for a connection, and what was measured. */
typedef struct {
    uint16_t port;
    char *request;
    size_t request_len;
    int *idle;
    int nidle;
    uint64_t *queue;
    size_t qhead, qtail, qmax;
    uint64_t *lat, *lag;
    uint64_t scheduled, sent, done, ok, failed, nlat, nlag;
} target_t;

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

static int open_conn(uint16_t port) {
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
    if (argc != 8 && argc != 9) {
        fprintf(stderr, "usage: %s PORT[,PORT...] PATH BODYFILE RATE SECONDS WARMUP_SECONDS CONNECTIONS [SLICE_MS]\n", argv[0]);
        return 1;
    }
    const char *path = argv[2];
    double rate = atof(argv[4]), seconds = atof(argv[5]), warmup = atof(argv[6]);
    int nconn = atoi(argv[7]);
    double slice_ms = argc == 9 ? atof(argv[8]) : 200;
    target_t targets[MAX_TARGETS] = {0};
    int ntargets = 0;
    for (char *p = argv[1]; *p && ntargets < MAX_TARGETS;) {
        char *stop;
        long v = strtol(p, &stop, 10);
        if (stop == p || v <= 0 || v > 65535) { ntargets = 0; break; }
        targets[ntargets++].port = (uint16_t)v;
        p = *stop == ',' ? stop + 1 : stop;
        if (*stop && *stop != ',') { ntargets = 0; break; }
    }
    if (ntargets == 0 || rate <= 0 || seconds <= 0 || warmup < 0 || nconn < 1 || slice_ms <= 0) { fprintf(stderr, "constant_rate: bad arguments\n"); return 1; }

    FILE *f = fopen(argv[3], "rb");
    if (!f) { perror(argv[3]); return 1; }
    char body[65536];
    size_t body_len = fread(body, 1, sizeof body, f);
    fclose(f);

    uint64_t period = (uint64_t)(1e9 / rate), slice = (uint64_t)(slice_ms * 1e6);
    uint64_t total = (uint64_t)((seconds + warmup) * rate), counted_from = (uint64_t)(warmup * rate);
    conn_t *conns = calloc((size_t)(nconn * ntargets), sizeof *conns);
    if (!conns) { fprintf(stderr, "constant_rate: out of memory\n"); return 1; }
    int ep = epoll_create1(0);
    for (int g = 0; g < ntargets; g++) {
        target_t *tg = &targets[g];
        tg->request = malloc(body_len + 512);
        tg->request_len = (size_t)snprintf(tg->request, 512,
            "POST %s HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
            path, tg->port, body_len);
        memcpy(tg->request + tg->request_len, body, body_len);
        tg->request_len += body_len;
        tg->lat = calloc(total, sizeof *tg->lat);
        tg->lag = calloc(total, sizeof *tg->lag);
        tg->queue = calloc(total, sizeof *tg->queue); /* intended times of due requests with no idle connection */
        tg->idle = calloc((size_t)nconn, sizeof *tg->idle);
        if (!tg->request || !tg->lat || !tg->lag || !tg->queue || !tg->idle) { fprintf(stderr, "constant_rate: out of memory\n"); return 1; }
        for (int i = g * nconn; i < (g + 1) * nconn; i++) {
            conns[i].target = g;
            conns[i].fd = open_conn(tg->port);
            if (conns[i].fd < 0) { fprintf(stderr, "constant_rate: cannot connect to 127.0.0.1:%u: %s\n", tg->port, strerror(errno)); return 1; }
            conns[i].cap = 65536;
            conns[i].buf = malloc(conns[i].cap);
            struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
            epoll_ctl(ep, EPOLL_CTL_ADD, conns[i].fd, &ev);
            tg->idle[tg->nidle++] = i;
        }
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

    uint64_t scheduled = 0, done = 0;
    uint64_t cpu0 = 0, wall0 = 0;
    uint64_t deadline = 0; /* set once everything is scheduled: answers get 5 s more */
    uint64_t counted_start = t0 + counted_from * period;

    #define SEND(ci, t) do { \
        conn_t *c_ = &conns[ci]; \
        target_t *g_ = &targets[c_->target]; \
        uint64_t s_ = now_ns(); \
        ssize_t w_ = write(c_->fd, g_->request, g_->request_len); \
        c_->busy = 1; c_->intended = (t); c_->len = 0; g_->sent++; \
        if ((t) >= counted_start) g_->lag[g_->nlag++] = s_ > (t) ? s_ - (t) : 0; \
        if (w_ != (ssize_t)g_->request_len) { c_->busy = 2; /* failed: reported when it is read */ } \
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
                    target_t *tg = &targets[((t - t0) / slice) % (uint64_t)ntargets];
                    tg->scheduled++;
                    if (tg->nidle > 0) { int ci = tg->idle[--tg->nidle]; SEND(ci, t); }
                    else { tg->queue[tg->qtail++] = t; if (tg->qtail - tg->qhead > tg->qmax) tg->qmax = tg->qtail - tg->qhead; }
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
            target_t *tg = &targets[c->target];
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
                    c->fd = open_conn(tg->port); c->len = 0;
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
            tg->done++;
            int good = parsed == 1 && status == 200;
            if (good) tg->ok++; else tg->failed++;
            if (c->intended >= counted_start && good) tg->lat[tg->nlat++] = t - c->intended;
            c->busy = 0; c->len = 0;
            if (parsed != 1 || finished < 0) { /* start again on a fresh connection */
                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL); close(c->fd);
                c->fd = open_conn(tg->port);
                if (c->fd < 0) { fprintf(stderr, "constant_rate: reconnect failed\n"); return 1; }
                struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)ci};
                epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
            }
            if (tg->qhead < tg->qtail) { uint64_t q = tg->queue[tg->qhead++]; SEND(ci, q); }
            else tg->idle[tg->nidle++] = ci;
        }
    }
    uint64_t wall = now_ns() - wall0, cpu = cpu_ns() - cpu0;
    for (int g = 0; g < ntargets; g++) {
        target_t *tg = &targets[g];
        uint64_t unanswered = tg->scheduled - tg->done;
        qsort(tg->lat, tg->nlat, sizeof *tg->lat, cmp_u64);
        qsort(tg->lag, tg->nlag, sizeof *tg->lag, cmp_u64);
        /* achieved: the target's answers per second of the time it was the one being sent to */
        double share = wall > 0 ? (double)wall / (double)ntargets : 0.0;
        printf("CR port=%u rate=%.0f sent=%llu counted=%llu ok=%llu failed=%llu unanswered=%llu achieved_rps=%.1f "
               "p50_us=%.1f p90_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f "
               "send_lag_p99_us=%.1f send_lag_max_us=%.1f queue_max=%zu client_cpu_pct=%.1f\n",
            tg->port, rate, (unsigned long long)tg->sent, (unsigned long long)tg->nlat, (unsigned long long)tg->ok, (unsigned long long)tg->failed,
            (unsigned long long)unanswered, share > 0 ? (double)tg->nlat * 1e9 / share : 0.0,
            pct(tg->lat, tg->nlat, 50), pct(tg->lat, tg->nlat, 90), pct(tg->lat, tg->nlat, 99), pct(tg->lat, tg->nlat, 99.9),
            tg->nlat ? (double)tg->lat[tg->nlat - 1] / 1000.0 : -1,
            pct(tg->lag, tg->nlag, 99), tg->nlag ? (double)tg->lag[tg->nlag - 1] / 1000.0 : -1, tg->qmax,
            wall > 0 ? (double)cpu * 100.0 / (double)wall : 0.0);
    }
    return 0;
}
