/* Local AWS's compressed clock, preloaded (LD_PRELOAD) into local AWS and every process it starts when
 * LOCAL_AWS_CLOCK_SCALE is not 1.
 *
 * LOCAL_AWS_CLOCK="<origin ns since the epoch>:<scale>": the wall clock (CLOCK_REALTIME and what reads it:
 * gettimeofday, time) runs <scale> times faster from <origin> on, the same in every process, so a timestamp
 * one process writes (a metric datapoint, a lock's expiry, a history event) means the same instant to the
 * others. Monotonic clocks are left alone: timeouts of work (a Lambda function's, a Task's, an SDK's) stay
 * on real time, because compression does not make work faster. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>

static long long origin_ns;
static long double scale = 1.0L;
static int (*real_clock_gettime)(clockid_t, struct timespec *);

__attribute__((constructor)) static void scaled_clock_init(void) {
    real_clock_gettime = (int (*)(clockid_t, struct timespec *))dlsym(RTLD_NEXT, "clock_gettime");
    const char *spec = getenv("LOCAL_AWS_CLOCK");
    long long origin;
    double s;
    if (spec && sscanf(spec, "%lld:%lf", &origin, &s) == 2 && s >= 1.0) {
        origin_ns = origin;
        scale = s;
    }
}

static void compress(struct timespec *ts) {
    long long real = (long long)ts->tv_sec * 1000000000LL + ts->tv_nsec;
    long long fast = origin_ns + (long long)((long double)(real - origin_ns) * scale);
    ts->tv_sec = (time_t)(fast / 1000000000LL);
    ts->tv_nsec = (long)(fast % 1000000000LL);
}

int clock_gettime(clockid_t id, struct timespec *ts) {
    if (!real_clock_gettime) scaled_clock_init();
    int r = real_clock_gettime(id, ts);
    if (r == 0 && scale != 1.0L && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE)) compress(ts);
    return r;
}

int gettimeofday(struct timeval *tv, void *tz) {
    (void)tz;
    struct timespec ts;
    int r = clock_gettime(CLOCK_REALTIME, &ts);
    if (r == 0 && tv) {
        tv->tv_sec = ts.tv_sec;
        tv->tv_usec = ts.tv_nsec / 1000;
    }
    return r;
}

time_t time(time_t *out) {
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0) return (time_t)-1;
    if (out) *out = ts.tv_sec;
    return ts.tv_sec;
}
