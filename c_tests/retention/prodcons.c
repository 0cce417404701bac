/* Retention (b) and benchmark: a producer thread allocates BUFFERS buffers
 * of 1-8 MiB (random sizes, written in full) and hands them through a
 * bounded queue of QUEUE slots to a consumer thread, which checks and frees
 * them. Every buffer is freed by the thread that did not allocate it while
 * the allocator is still running.
 *
 * Usage: prodcons [BUFFERS=200] [QUEUE=2]
 */
#include "retention.h"

#define MAX_QUEUE 64

static struct {
    pthread_mutex_t lock;
    pthread_cond_t not_full, not_empty;
    unsigned char *buf[MAX_QUEUE];
    size_t size[MAX_QUEUE];
    unsigned tag[MAX_QUEUE];
    long head, count, cap;
} q = {.lock = PTHREAD_MUTEX_INITIALIZER, .not_full = PTHREAD_COND_INITIALIZER,
       .not_empty = PTHREAD_COND_INITIALIZER};

static long buffers;

static void *producer(void *arg)
{
    uint64_t rng = bench_seed(7);
    (void)arg;
    for (long i = 0; i < buffers; i++) {
        size_t size = ((size_t)1 << 20) + (size_t)(bench_rand(&rng) % (7u << 20));
        unsigned char *p = ret_malloc(size);
        ret_fill(p, size, (unsigned)i);
        pthread_mutex_lock(&q.lock);
        while (q.count == q.cap)
            pthread_cond_wait(&q.not_full, &q.lock);
        long slot = (q.head + q.count) % q.cap;
        q.buf[slot] = p;
        q.size[slot] = size;
        q.tag[slot] = (unsigned)i;
        q.count++;
        pthread_cond_signal(&q.not_empty);
        pthread_mutex_unlock(&q.lock);
    }
    return NULL;
}

static void *consumer(void *arg)
{
    (void)arg;
    for (long i = 0; i < buffers; i++) {
        pthread_mutex_lock(&q.lock);
        while (q.count == 0)
            pthread_cond_wait(&q.not_empty, &q.lock);
        unsigned char *p = q.buf[q.head];
        size_t size = q.size[q.head];
        unsigned tag = q.tag[q.head];
        q.head = (q.head + 1) % q.cap;
        q.count--;
        pthread_cond_signal(&q.not_full);
        pthread_mutex_unlock(&q.lock);
        ret_check(p, size, tag);
        free(p);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    buffers = bench_arg_long(argc, argv, 1, 200);
    q.cap = bench_arg_long(argc, argv, 2, 2);
    if (buffers < 1 || q.cap < 1 || q.cap > MAX_QUEUE)
        return 2;
    long flt0 = ret_minflt();
    double t0 = bench_now();
    pthread_t p, c;
    ret_thread(&p, producer, NULL);
    ret_thread(&c, consumer, NULL);
    pthread_join(p, NULL);
    pthread_join(c, NULL);
    char extra[64];
    snprintf(extra, sizeof extra, "buffers=%ld queue=%ld", buffers, q.cap);
    ret_result("prodcons", 2, (double)buffers, bench_now() - t0, flt0, extra);
    return 0;
}
