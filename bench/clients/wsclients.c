/*
 * A native load generator: many pgmesh WebSocket clients in one epoll loop.
 *
 * At 100,000 connections on one 2-core machine the JavaScript generators
 * (bench/clients/subscribers.ts and storm.ts, on Bun) spent twice the CPU of the
 * servers they measured, so the clients set the pace. This one does the same
 * work (connect from a loopback source address, upgrade, auth, subscribe, check
 * each delivery's sequence, time one in `sample`) at a fraction of the cost, and
 * reports in the same JSON lines as the TypeScript generators it stands in for.
 *
 *   wsclients --mode hold|storm --port P --path /v1/ws --count N --channel C
 *             --tokens FILE --addresses 127.0.0.1,127.0.0.2 --concurrency K
 *             [--sample-every S] [--lanes L]
 *
 * hold:  prints {"ready":n} once every client is subscribed, then every 100 ms
 *        {"report":{ready,min,total,errors,samples,cpuMs,closed}} (SubscriberReport).
 * storm: times each client from its TCP connect to its subscribe reply, prints
 *        {opened,failed,seconds,samples,cpuMs} (StormReport) once all are in or
 *        failed, and holds them until stdin closes.
 * reconnect: bench/clients/reconnecting.ts's clients (see there): each a user of its
 *        own in room (first + i) % rooms, over the instances on --ports in a round
 *        robin that skips one for 2 s after it refused; a dropped client comes back
 *        with the bundled client's backoff and resumes with `since`. Prints
 *        {"ready":n}, then every 200 ms {"report":{...}} (ReconnectingReport).
 *        Options: --ports P1,P2,... --rooms R --room-prefix X --first F.
 *
 * FILE has one JWT per line (client i is line i); each client sends
 * {"op":"auth"}, then on its reply {"op":"subscribe","channels":["@user",C]}.
 * Without --tokens a client subscribes to C alone (the URL's query authenticates).
 * Payloads are "<seq>|<sent epoch ms>|[<lane>|]..." as bench/load.ts's payload().
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum mode { HOLD, STORM, RECONNECT };
/* GONE and WAITING have no socket: a client of the reconnect mode waits for its next attempt. */
enum state { CONNECTING, UPGRADING, AUTHING, SUBSCRIBING, READY, GONE, WAITING };

struct conn {
  int fd;
  uint8_t state;
  uint32_t index;
  uint32_t received;
  double started;
  int32_t *last_seq;
  uint8_t *rest; /* input not yet a whole frame */
  uint32_t rest_len;
  /* The reconnect mode's: the instance of this attempt, whether it upgraded, attempts since the
     last success, the highest id seen (where a resume starts), when the subscribed connection
     dropped (0: it did not), and the generation its one pending timer must carry. */
  uint8_t instance, opened, attempt;
  int64_t last_id;
  double dropped_at;
  uint32_t gen;
};

static struct {
  int mode;
  int port;
  const char *path;
  const char *channel;
  uint32_t count;
  uint32_t concurrency;
  uint32_t sample_every;
  uint32_t lanes;
  char **tokens;
  struct in_addr *addresses;
  uint32_t address_count;
  int ports[16];
  uint32_t port_count;
  uint32_t rooms;
  const char *room_prefix;
  uint32_t first;
} cfg = {.path = "/v1/ws", .concurrency = 64, .sample_every = 1};

static struct conn *conns;
static int ep;
static uint32_t next_client, in_flight, ready, failed, closed_count, errors, since_sample;
static double *samples;
static size_t sample_len, sample_cap;
static double storm_started;
static int reported;
static char upgrade[16][512];
static size_t upgrade_len[16];

#define READ_BUFFER (256 * 1024)
static uint8_t rb[READ_BUFFER];

static double wall_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static double mono_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static double cpu_ms(void) {
  struct rusage u;
  getrusage(RUSAGE_SELF, &u);
  return (u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1e3 + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e3;
}

static void die(const char *what, uint32_t client) {
  fprintf(stderr, "wsclients: client %u: %s (%s)\n", client, what, errno ? strerror(errno) : "-");
  exit(1);
}

static void add_sample(double ms) {
  if (sample_len == sample_cap) {
    sample_cap = sample_cap ? sample_cap * 2 : 4096;
    samples = realloc(samples, sample_cap * sizeof *samples);
    if (!samples) die("out of memory", 0);
  }
  samples[sample_len++] = ms;
}

/* Writes a whole buffer: frames are small and a client's socket buffer is near empty, so a short write is a fault of the run
   (but for a server that went away under the reconnect mode: the read that follows sees the drop). */
static void send_all(struct conn *c, const void *data, size_t len) {
  ssize_t n = write(c->fd, data, len);
  if (n == (ssize_t)len) return;
  if (cfg.mode == RECONNECT && n < 0 && errno != EAGAIN) {
    shutdown(c->fd, SHUT_RDWR);
    return;
  }
  die("short write", c->index);
}

/* A masked client frame (RFC 6455 5.3: clients must mask). */
static void send_frame(struct conn *c, int opcode, const char *payload, size_t len) {
  static const uint8_t mask[4] = {0x5a, 0x17, 0xc3, 0x3e};
  uint8_t frame[16 + 4096];
  size_t h = 0;
  if (len > 4096) die("frame too long", c->index);
  frame[h++] = 0x80 | opcode;
  if (len < 126) {
    frame[h++] = 0x80 | len;
  } else {
    frame[h++] = 0x80 | 126;
    frame[h++] = len >> 8;
    frame[h++] = len & 0xff;
  }
  memcpy(frame + h, mask, 4);
  h += 4;
  for (size_t i = 0; i < len; i++) frame[h + i] = payload[i] ^ mask[i & 3];
  send_all(c, frame, h + len);
}

static void send_text(struct conn *c, const char *text) { send_frame(c, 1, text, strlen(text)); }

static void subscribe(struct conn *c) {
  char frame[1024];
  if (cfg.tokens)
    snprintf(frame, sizeof frame, "{\"op\":\"subscribe\",\"channels\":[\"@user\",\"%s\"]}", cfg.channel);
  else
    snprintf(frame, sizeof frame, "{\"op\":\"subscribe\",\"channel\":\"%s\"}", cfg.channel);
  send_text(c, frame);
  c->state = SUBSCRIBING;
}

static void start_next(void);

static void attempt_failed(struct conn *c);

/* A client that could not get in: the storm counts it, the reconnect mode tries again, a hold run has no use for a partial pool. */
static void fail(struct conn *c, const char *why) {
  if (cfg.mode == RECONNECT) return attempt_failed(c);
  if (cfg.mode != STORM) die(why, c->index);
  if (c->state != GONE) {
    failed++;
    in_flight--;
    close(c->fd);
    c->state = GONE;
  }
  start_next();
}

static void became_ready(struct conn *c) {
  c->state = READY;
  ready++;
  in_flight--;
  if (cfg.mode == STORM) add_sample(mono_ms() - c->started);
  start_next();
}

static void on_payload(struct conn *c, const uint8_t *p, size_t len) {
  char text[64];
  size_t n = len < sizeof text - 1 ? len : sizeof text - 1;
  memcpy(text, p, n);
  text[n] = 0;
  char *end;
  long seq = strtol(text, &end, 10);
  double sent = strtod(end + 1, &end);
  long lane = cfg.lanes ? strtol(end + 1, NULL, 10) : 0;
  if (lane < 0 || (uint32_t)lane >= (cfg.lanes ? cfg.lanes : 1)) lane = 0;
  if (seq != c->last_seq[lane] + 1) errors++;
  c->last_seq[lane] = seq;
  c->received++;
  if (++since_sample >= cfg.sample_every) {
    since_sample = 0;
    add_sample(wall_ms() - sent);
  }
}

static int starts_with(const uint8_t *p, size_t len, const char *prefix) {
  size_t n = strlen(prefix);
  return len >= n && memcmp(p, prefix, n) == 0;
}

static int succeeded(const uint8_t *p, size_t len) { return memmem(p, len, "\"success\":true", 14) != NULL; }

static void on_reconnect_text(struct conn *c, const uint8_t *p, size_t len);

static void on_text(struct conn *c, const uint8_t *p, size_t len) {
  if (cfg.mode == RECONNECT) return on_reconnect_text(c, p, len);
  if (c->state == READY) {
    if (len > 0 && p[0] != '{') on_payload(c, p, len); /* '{' is a reply or event, never a payload */
    return;
  }
  if (c->state == AUTHING && starts_with(p, len, "{\"op\":\"auth\"")) {
    if (!succeeded(p, len)) return fail(c, "auth refused");
    subscribe(c);
  } else if (c->state == SUBSCRIBING && starts_with(p, len, "{\"op\":\"subscribe\"")) {
    if (!succeeded(p, len)) return fail(c, "subscribe refused");
    became_ready(c);
  }
}

static void dropped(struct conn *c);

static void on_gone(struct conn *c) {
  if (cfg.mode == RECONNECT) {
    if (c->state == READY) return dropped(c);
    return attempt_failed(c);
  }
  if (c->state == READY) {
    closed_count++;
    close(c->fd);
    c->state = GONE;
  } else if (c->state != GONE) {
    fail(c, "closed before subscribed");
  }
}

/* Consumes whole frames from p; returns the bytes used. */
static size_t on_frames(struct conn *c, const uint8_t *p, size_t avail) {
  size_t used = 0;
  while (c->state < GONE && avail - used >= 2) {
    const uint8_t *f = p + used;
    size_t left = avail - used;
    int opcode = f[0] & 0x0f;
    uint64_t len = f[1] & 0x7f;
    size_t h = 2;
    if (f[1] & 0x80) die("masked frame from the server", c->index);
    if (len == 126) {
      if (left < 4) break;
      len = (uint64_t)f[2] << 8 | f[3];
      h = 4;
    } else if (len == 127) {
      if (left < 10) break;
      len = 0;
      for (int i = 2; i < 10; i++) len = len << 8 | f[i];
      h = 10;
    }
    if (len > READ_BUFFER / 2) die("frame larger than the read buffer", c->index);
    if (left < h + len) break;
    used += h + len;
    if (opcode == 1) on_text(c, f + h, len);
    else if (opcode == 9) send_frame(c, 10, (const char *)f + h, len);
    else if (opcode == 8) on_gone(c);
  }
  return used;
}

static size_t on_upgrade(struct conn *c, const uint8_t *p, size_t avail) {
  const uint8_t *end = memmem(p, avail, "\r\n\r\n", 4);
  if (!end) return 0;
  if (!starts_with(p, avail, "HTTP/1.1 101")) {
    fail(c, "upgrade refused");
    return avail;
  }
  if (cfg.mode == RECONNECT) {
    /* As the TypeScript client: auth and subscribe at once; a comeback resumes after the last id seen. */
    char frame[4096];
    snprintf(frame, sizeof frame, "{\"op\":\"auth\",\"token\":\"%s\"}", cfg.tokens[c->index]);
    send_text(c, frame);
    if (c->dropped_at > 0)
      snprintf(frame, sizeof frame, "{\"op\":\"subscribe\",\"channels\":[\"@user\",\"%s%u\"],\"since\":%lld}", cfg.room_prefix,
               (cfg.first + c->index) % cfg.rooms, (long long)c->last_id);
    else
      snprintf(frame, sizeof frame, "{\"op\":\"subscribe\",\"channels\":[\"@user\",\"%s%u\"]}", cfg.room_prefix, (cfg.first + c->index) % cfg.rooms);
    send_text(c, frame);
    c->opened = 1;
    c->state = SUBSCRIBING;
  } else if (cfg.tokens) {
    char frame[4096];
    snprintf(frame, sizeof frame, "{\"op\":\"auth\",\"token\":\"%s\"}", cfg.tokens[c->index]);
    send_text(c, frame);
    c->state = AUTHING;
  } else {
    subscribe(c);
  }
  return (size_t)(end + 4 - p);
}

static void on_readable(struct conn *c) {
  for (;;) {
    size_t have = c->rest_len;
    if (have) memcpy(rb, c->rest, have);
    ssize_t n = read(c->fd, rb + have, READ_BUFFER - have);
    if (n == 0) return on_gone(c);
    if (n < 0) {
      if (errno == EAGAIN) return;
      if (errno == ECONNRESET || cfg.mode == RECONNECT) return on_gone(c);
      die("read", c->index);
    }
    size_t avail = have + n, used = 0;
    if (c->state == UPGRADING) used = on_upgrade(c, rb, avail);
    if (c->state != UPGRADING) used += on_frames(c, rb + used, avail - used);
    if (c->state >= GONE) return;
    c->rest_len = avail - used;
    if (c->rest_len) {
      c->rest = realloc(c->rest, c->rest_len);
      memcpy(c->rest, rb + used, c->rest_len);
    }
    if ((size_t)n < READ_BUFFER - have) return;
  }
}

static void on_writable(struct conn *c) {
  int err = 0;
  socklen_t len = sizeof err;
  getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
  if (err) {
    errno = err;
    return fail(c, "connect");
  }
  struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
  epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e);
  c->state = UPGRADING;
  send_all(c, upgrade[c->instance], upgrade_len[c->instance]);
}

static void connect_client(struct conn *c);
static void start_attempt(struct conn *c);

static void open_client(uint32_t i) {
  struct conn *c = &conns[i];
  c->index = i;
  c->last_seq = malloc((cfg.lanes ? cfg.lanes : 1) * sizeof(int32_t));
  for (uint32_t l = 0; l < (cfg.lanes ? cfg.lanes : 1); l++) c->last_seq[l] = -1;
  in_flight++;
  if (cfg.mode == RECONNECT) start_attempt(c);
  else connect_client(c);
}

/* Opens the client's socket to its server (its instance's, in the reconnect mode). */
static void connect_client(struct conn *c) {
  uint32_t i = c->index;
  c->state = CONNECTING;
  c->started = mono_ms();
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (c->fd < 0) die("socket", i);
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  /* The port is picked at connect, per destination: one source address then holds ~28k clients of each server. */
  setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
  struct sockaddr_in local = {.sin_family = AF_INET, .sin_addr = cfg.addresses[i % cfg.address_count]};
  if (bind(c->fd, (struct sockaddr *)&local, sizeof local) < 0) die("bind", i);
  struct sockaddr_in server = {.sin_family = AF_INET, .sin_port = htons(cfg.port_count ? cfg.ports[c->instance] : cfg.port)};
  inet_pton(AF_INET, "127.0.0.1", &server.sin_addr);
  if (connect(c->fd, (struct sockaddr *)&server, sizeof server) < 0 && errno != EINPROGRESS) return fail(c, "connect");
  struct epoll_event e = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
  epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &e);
}

static void start_next(void) {
  while (in_flight < cfg.concurrency && next_client < cfg.count) open_client(next_client++);
}

static void print_samples(void) {
  for (size_t i = 0; i < sample_len; i++) printf(i ? ",%.3f" : "%.3f", samples[i]);
  sample_len = 0;
}

static void report(void) {
  uint64_t total = 0;
  uint32_t min = UINT32_MAX;
  for (uint32_t i = 0; i < cfg.count; i++) {
    if (conns[i].state != READY && conns[i].state != GONE) continue;
    total += conns[i].received;
    if (conns[i].received < min) min = conns[i].received;
  }
  printf("{\"report\":{\"ready\":%u,\"min\":%u,\"total\":%llu,\"errors\":%u,\"cpuMs\":%.1f,\"closed\":%u,\"samples\":[", ready,
         min == UINT32_MAX ? 0 : min, (unsigned long long)total, errors, cpu_ms(), closed_count);
  print_samples();
  printf("]}}\n");
  fflush(stdout);
}

static void storm_report(void) {
  printf("{\"opened\":%u,\"failed\":%u,\"seconds\":%.3f,\"cpuMs\":%.1f,\"samples\":[", ready, failed, (mono_ms() - storm_started) / 1e3, cpu_ms());
  print_samples();
  printf("]}\n");
  fflush(stdout);
}

/* ---- The reconnect mode: the policy and the report of bench/clients/reconnecting.ts ---- */

#define BACKOFF_MIN_MS 250
#define BACKOFF_MAX_MS 15000
/* An attempt with no subscribe reply by then is given up and retried. */
#define ATTEMPT_TIMEOUT_MS 10000
/* An instance that refused an attempt is skipped this long, as a balancer's health check would take it out. */
#define HEALTH_CHECK_MS 2000

/* One pending timer per client (an attempt's deadline, or the end of its backoff), in a min-heap; a
   timer whose generation is not its client's any more is stale and skipped. */
struct timer {
  double due;
  uint32_t client, gen;
};
static struct timer *timers;
static size_t timer_len, timer_cap;
static uint32_t balancer, connected, drops, back, attempts_failed, expired;
static double down_until[16];
/* Per room, what follows the head of one of its messages: `"<room>","id":`, made once, not per delivery. */
static char **room_fields;

static void timer_push(double due, uint32_t client, uint32_t gen) {
  if (timer_len == timer_cap) {
    timer_cap = timer_cap ? timer_cap * 2 : 4096;
    timers = realloc(timers, timer_cap * sizeof *timers);
    if (!timers) die("out of memory", client);
  }
  size_t i = timer_len++;
  while (i > 0 && timers[(i - 1) / 2].due > due) {
    timers[i] = timers[(i - 1) / 2];
    i = (i - 1) / 2;
  }
  timers[i] = (struct timer){due, client, gen};
}

static struct timer timer_pop(void) {
  struct timer top = timers[0], last = timers[--timer_len];
  size_t i = 0;
  for (;;) {
    size_t child = 2 * i + 1;
    if (child >= timer_len) break;
    if (child + 1 < timer_len && timers[child + 1].due < timers[child].due) child++;
    if (timers[child].due >= last.due) break;
    timers[i] = timers[child];
    i = child;
  }
  if (timer_len) timers[i] = last;
  return top;
}

/* The next instance in turn that is not known to be down (any, if all are). */
static uint32_t next_instance(double now) {
  for (uint32_t tries = 0; tries < cfg.port_count; tries++) {
    uint32_t k = balancer++ % cfg.port_count;
    if (down_until[k] <= now) return k;
  }
  return balancer++ % cfg.port_count;
}

static void start_attempt(struct conn *c) {
  double now = mono_ms();
  c->instance = next_instance(now);
  c->opened = 0;
  c->rest_len = 0;
  timer_push(now + ATTEMPT_TIMEOUT_MS, c->index, ++c->gen);
  connect_client(c);
}

/* Waits a random half to all of a delay doubling from 0.25 s to 15 s, as the bundled client does. */
static void back_off(struct conn *c) {
  double delay = BACKOFF_MIN_MS * (double)(1u << (c->attempt < 6 ? c->attempt : 6));
  if (delay > BACKOFF_MAX_MS) delay = BACKOFF_MAX_MS;
  if (c->attempt < UINT8_MAX) c->attempt++;
  c->state = WAITING;
  timer_push(mono_ms() + delay / 2 + drand48() * delay / 2, c->index, ++c->gen);
}

static void attempt_failed(struct conn *c) {
  if (c->state >= GONE) return;
  attempts_failed++;
  /* Refused, or answered 503 (draining, full): the balancer takes that instance out for a while. */
  if (!c->opened) down_until[c->instance] = mono_ms() + HEALTH_CHECK_MS;
  close(c->fd);
  back_off(c);
}

/* The subscribed connection dropped: the first try after it waits too, as the bundled client's does. */
static void dropped(struct conn *c) {
  close(c->fd);
  connected--;
  drops++;
  c->dropped_at = mono_ms();
  back_off(c);
}

static void reconnect_subscribed(struct conn *c, const uint8_t *p, size_t len) {
  if (c->dropped_at == 0) {
    /* The first subscription starts from the server's position; a resume keeps the last id seen (its replay follows). */
    const uint8_t *at = memmem(p, len, "\"position\":", 11);
    if (at) {
      long long position = strtoll((const char *)at + 11, NULL, 10);
      if (position > c->last_id) c->last_id = position;
    }
  }
  c->state = READY;
  c->attempt = 0;
  c->gen++; /* its deadline is void */
  connected++;
  if (c->dropped_at > 0) {
    add_sample(mono_ms() - c->dropped_at);
    c->dropped_at = 0;
    back++;
  } else {
    in_flight--;
    start_next();
  }
}

/* {"event":"message","channel":"<room>","id":<id>,"data":"<seq>|...", read in place. */
static void on_reconnect_message(struct conn *c, const uint8_t *p, size_t len) {
  static const char head[] = "{\"event\":\"message\",\"channel\":";
  char text[256];
  const char *room = room_fields[(cfg.first + c->index) % cfg.rooms];
  size_t room_len = strlen(room), at = sizeof head - 1;
  if (len < at + room_len || memcmp(p + at, room, room_len)) return; /* its user channel's */
  at += room_len;
  size_t n = len - at < sizeof text - 1 ? len - at : sizeof text - 1;
  memcpy(text, p + at, n);
  text[n] = 0;
  char *end;
  long long id = strtoll(text, &end, 10);
  char *data = strstr(end, "\"data\":\"");
  if (!data) return;
  long seq = strtol(data + 8, NULL, 10);
  if (id <= c->last_id || seq != c->last_seq[0] + 1) errors++;
  if (id > c->last_id) c->last_id = id;
  c->last_seq[0] = seq;
}

static void on_reconnect_text(struct conn *c, const uint8_t *p, size_t len) {
  if (starts_with(p, len, "{\"event\":\"message\",")) return on_reconnect_message(c, p, len);
  if (starts_with(p, len, "{\"event\":\"expired\"")) expired++;
  if (c->state == SUBSCRIBING && starts_with(p, len, "{\"op\":\"subscribe\"")) {
    if (!succeeded(p, len)) return attempt_failed(c);
    reconnect_subscribed(c, p, len);
  }
}

/* Runs the timers that are due: an attempt past its deadline fails, a backoff that ended tries again. */
static void run_timers(void) {
  double now = mono_ms();
  while (timer_len && timers[0].due <= now) {
    struct timer t = timer_pop();
    struct conn *c = &conns[t.client];
    if (t.gen != c->gen) continue;
    if (c->state == WAITING) start_attempt(c);
    else if (c->state < READY) attempt_failed(c);
  }
}

static void reconnect_report(void) {
  static int32_t *room_min;
  if (!room_min) room_min = malloc(cfg.rooms * sizeof *room_min);
  for (uint32_t r = 0; r < cfg.rooms; r++) room_min[r] = INT32_MAX;
  for (uint32_t i = 0; i < cfg.count; i++) {
    uint32_t r = (cfg.first + i) % cfg.rooms;
    if (conns[i].last_seq[0] + 1 < room_min[r]) room_min[r] = conns[i].last_seq[0] + 1;
  }
  printf("{\"report\":{\"connected\":%u,\"drops\":%u,\"back\":%u,\"attemptsFailed\":%u,\"errors\":%u,\"expired\":%u,\"cpuMs\":%.1f,\"roomMin\":[",
         connected, drops, back, attempts_failed, errors, expired, cpu_ms());
  for (uint32_t r = 0; r < cfg.rooms; r++) {
    if (r) putchar(',');
    if (room_min[r] == INT32_MAX) printf("null");
    else printf("%d", room_min[r]);
  }
  printf("],\"samples\":[");
  print_samples();
  printf("]}}\n");
  fflush(stdout);
}

static char **read_tokens(const char *file, uint32_t count) {
  FILE *f = fopen(file, "r");
  if (!f) die("cannot read the tokens file", 0);
  char **tokens = calloc(count, sizeof *tokens);
  char *line = NULL;
  size_t cap = 0;
  for (uint32_t i = 0; i < count; i++) {
    ssize_t n = getline(&line, &cap, f);
    if (n <= 0) die("fewer tokens than clients", i);
    if (line[n - 1] == '\n') line[n - 1] = 0;
    tokens[i] = strdup(line);
  }
  free(line);
  fclose(f);
  return tokens;
}

static void parse_addresses(char *list) {
  cfg.addresses = calloc(64, sizeof *cfg.addresses);
  for (char *a = strtok(list, ","); a && cfg.address_count < 64; a = strtok(NULL, ","))
    if (inet_pton(AF_INET, a, &cfg.addresses[cfg.address_count]) == 1) cfg.address_count++;
  if (!cfg.address_count) die("no source address", 0);
}

static void parse_ports(char *list) {
  for (char *a = strtok(list, ","); a && cfg.port_count < 16; a = strtok(NULL, ",")) cfg.ports[cfg.port_count++] = atoi(a);
}

int main(int argc, char **argv) {
  const char *tokens = NULL;
  char *addresses = NULL, *ports = NULL;
  for (int i = 1; i + 1 < argc; i += 2) {
    const char *k = argv[i], *v = argv[i + 1];
    if (!strcmp(k, "--mode")) cfg.mode = !strcmp(v, "storm") ? STORM : !strcmp(v, "reconnect") ? RECONNECT : HOLD;
    else if (!strcmp(k, "--port")) cfg.port = atoi(v);
    else if (!strcmp(k, "--ports")) ports = strdup(v);
    else if (!strcmp(k, "--path")) cfg.path = v;
    else if (!strcmp(k, "--count")) cfg.count = strtoul(v, NULL, 10);
    else if (!strcmp(k, "--channel")) cfg.channel = v;
    else if (!strcmp(k, "--rooms")) cfg.rooms = strtoul(v, NULL, 10);
    else if (!strcmp(k, "--room-prefix")) cfg.room_prefix = v;
    else if (!strcmp(k, "--first")) cfg.first = strtoul(v, NULL, 10);
    else if (!strcmp(k, "--tokens")) tokens = v;
    else if (!strcmp(k, "--addresses")) addresses = strdup(v);
    else if (!strcmp(k, "--concurrency")) cfg.concurrency = strtoul(v, NULL, 10);
    else if (!strcmp(k, "--sample-every")) cfg.sample_every = strtoul(v, NULL, 10);
    else if (!strcmp(k, "--lanes")) cfg.lanes = strtoul(v, NULL, 10);
    else die("unknown option", 0);
  }
  if (cfg.mode == RECONNECT) {
    if (!ports || !cfg.rooms || !cfg.room_prefix || !tokens || !addresses) die("--ports, --rooms, --room-prefix, --tokens and --addresses are needed", 0);
    parse_ports(ports);
    /* A server gone mid-write is a drop, read next: not a signal that ends the run. */
    signal(SIGPIPE, SIG_IGN);
    srand48(getpid() ^ (long)mono_ms());
    balancer = cfg.first; /* the first fill starts at the process's own share of the instances, so each holds the same number */
    room_fields = calloc(cfg.rooms, sizeof *room_fields);
    for (uint32_t r = 0; r < cfg.rooms; r++) {
      char field[160];
      snprintf(field, sizeof field, "\"%s%u\",\"id\":", cfg.room_prefix, r);
      room_fields[r] = strdup(field);
    }
  } else {
    if (!cfg.port || !cfg.channel || !addresses) die("--port, --channel and --addresses are needed", 0);
  }
  parse_addresses(addresses);
  if (tokens) cfg.tokens = read_tokens(tokens, cfg.count);
  for (uint32_t k = 0; k < (cfg.port_count ? cfg.port_count : 1); k++)
    upgrade_len[k] = snprintf(upgrade[k], sizeof upgrade[k],
                              "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                              cfg.path, cfg.port_count ? cfg.ports[k] : cfg.port);
  conns = calloc(cfg.count, sizeof *conns);
  ep = epoll_create1(0);
  if (cfg.mode == STORM) {
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, 0, &e); /* stdin: its end ends the run */
  }
  storm_started = mono_ms();
  start_next();
  double next_report = mono_ms() + 100;
  struct epoll_event events[1024];
  for (;;) {
    int timeout = reported && cfg.mode != STORM ? (int)(next_report - mono_ms()) : 100;
    if (cfg.mode == RECONNECT && timer_len) {
      int due = (int)(timers[0].due - mono_ms()) + 1;
      if (due < timeout) timeout = due;
    }
    int n = epoll_wait(ep, events, 1024, timeout < 0 ? 0 : timeout);
    if (n < 0 && errno != EINTR) die("epoll_wait", 0);
    for (int k = 0; k < n; k++) {
      struct conn *c = events[k].data.ptr;
      if (!c) {
        if (read(0, rb, sizeof rb) <= 0) exit(0);
        continue;
      }
      if (c->state == CONNECTING) {
        if (events[k].events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) on_writable(c);
      } else if (c->state < GONE) {
        on_readable(c);
      }
    }
    if (cfg.mode == RECONNECT) {
      run_timers();
      if (!reported && next_client == cfg.count && connected == cfg.count) {
        reported = 1;
        printf("{\"ready\":%u}\n", connected), fflush(stdout);
        next_report = mono_ms() + 200;
      }
      if (reported && mono_ms() >= next_report) {
        reconnect_report();
        next_report += 200;
      }
      continue;
    }
    if (!reported && ready + failed == cfg.count) {
      reported = 1;
      if (cfg.mode == STORM) storm_report();
      else printf("{\"ready\":%u}\n", ready), fflush(stdout);
      next_report = mono_ms() + 100;
    }
    if (reported && cfg.mode != STORM && mono_ms() >= next_report) {
      report();
      next_report += 100;
    }
  }
}
