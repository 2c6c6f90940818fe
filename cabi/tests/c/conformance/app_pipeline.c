/* app_pipeline.c: a three-stage pipeline over bounded queues, written the way an application
 * would write one (no test scaffolding). A reader thread produces 3000 text records; two
 * worker threads take records from the first queue, "parse" each (word count, letter
 * frequencies, a checksum) and put the result on the second queue; a writer thread takes the
 * results, puts them back in record order with a reorder buffer, and prints every 250th one
 * and a summary. Each queue holds 16 items and is a mutex with "not empty" and "not full"
 * condition variables; end of input travels down the pipeline as a closed flag. The output
 * does not depend on which worker handled which record.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RECORDS 3000
#define CAPACITY 16
#define WORKERS 2

struct queue {
    pthread_mutex_t lock;
    pthread_cond_t not_empty, not_full;
    void *items[CAPACITY];
    int head, count, closed;
};

static void queue_init(struct queue *q) {
    memset(q, 0, sizeof *q);
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->not_empty, NULL);
    pthread_cond_init(&q->not_full, NULL);
}

static void queue_put(struct queue *q, void *item) {
    pthread_mutex_lock(&q->lock);
    while (q->count == CAPACITY) pthread_cond_wait(&q->not_full, &q->lock);
    q->items[(q->head + q->count) % CAPACITY] = item;
    q->count++;
    pthread_cond_signal(&q->not_empty);
    pthread_mutex_unlock(&q->lock);
}

/* NULL once the queue is closed and empty. */
static void *queue_get(struct queue *q) {
    pthread_mutex_lock(&q->lock);
    while (q->count == 0 && !q->closed) pthread_cond_wait(&q->not_empty, &q->lock);
    void *item = NULL;
    if (q->count > 0) {
        item = q->items[q->head];
        q->head = (q->head + 1) % CAPACITY;
        q->count--;
        pthread_cond_signal(&q->not_full);
    }
    pthread_mutex_unlock(&q->lock);
    return item;
}

static void queue_close(struct queue *q) {
    pthread_mutex_lock(&q->lock);
    q->closed = 1;
    pthread_cond_broadcast(&q->not_empty);
    pthread_mutex_unlock(&q->lock);
}

struct record {
    int seq;
    char text[96];
};

struct parsed {
    int seq;
    int words, letters;
    char commonest;
    uint32_t checksum;
};

static struct queue raw, parsed;

static const char *vocabulary[] = {"alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel",
                                   "india", "juliet", "kilo", "lima", "mike", "november", "oscar", "papa"};

static void *reader(void *arg) {
    (void)arg;
    uint32_t x = 2463534242u;
    for (int i = 0; i < RECORDS; i++) {
        struct record *r = malloc(sizeof *r);
        if (!r) abort();
        r->seq = i;
        r->text[0] = 0;
        int words = 3 + i % 7;
        for (int w = 0; w < words; w++) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            if (w) strcat(r->text, " ");
            strcat(r->text, vocabulary[x % 16]);
        }
        queue_put(&raw, r);
    }
    queue_close(&raw);
    return NULL;
}

static void *worker(void *arg) {
    (void)arg;
    struct record *r;
    while ((r = queue_get(&raw)) != NULL) {
        struct parsed *p = malloc(sizeof *p);
        if (!p) abort();
        int freq[26] = {0};
        p->seq = r->seq;
        p->words = 1;
        p->letters = 0;
        p->checksum = 2166136261u;
        for (const char *c = r->text; *c; c++) {
            if (*c == ' ') p->words++;
            if (*c >= 'a' && *c <= 'z') {
                freq[*c - 'a']++;
                p->letters++;
            }
            p->checksum = (p->checksum ^ (uint8_t)*c) * 16777619u;
        }
        int best = 0;
        for (int l = 1; l < 26; l++)
            if (freq[l] > freq[best]) best = l;
        p->commonest = (char)('a' + best);
        free(r);
        queue_put(&parsed, p);
    }
    return NULL;
}

static void *writer(void *arg) {
    (void)arg;
    static struct parsed *pending[RECORDS];
    int next = 0;
    long words = 0, letters = 0;
    uint32_t digest = 0;
    int by_letter[26] = {0};
    struct parsed *p;
    while ((p = queue_get(&parsed)) != NULL) {
        pending[p->seq] = p;
        while (next < RECORDS && pending[next]) {
            struct parsed *q = pending[next];
            if (q->seq % 250 == 0)
                printf("record %4d: %d words, %2d letters, commonest '%c', checksum %08x\n", q->seq, q->words,
                       q->letters, q->commonest, (unsigned)q->checksum);
            words += q->words;
            letters += q->letters;
            by_letter[q->commonest - 'a']++;
            digest = digest * 31u + q->checksum;
            free(q);
            pending[next++] = NULL;
        }
    }
    printf("records written in order: %d of %d\n", next, RECORDS);
    printf("words: %ld, letters: %ld, digest: %08x\n", words, letters, (unsigned)digest);
    printf("records by commonest letter:");
    for (int l = 0; l < 26; l++)
        if (by_letter[l]) printf(" %c=%d", 'a' + l, by_letter[l]);
    printf("\n");
    return NULL;
}

int main(void) {
    queue_init(&raw);
    queue_init(&parsed);
    pthread_t r, w[WORKERS], out;
    if (pthread_create(&out, NULL, writer, NULL) || pthread_create(&r, NULL, reader, NULL)) {
        fprintf(stderr, "pthread_create failed\n");
        return 1;
    }
    for (int i = 0; i < WORKERS; i++)
        if (pthread_create(&w[i], NULL, worker, NULL)) {
            fprintf(stderr, "pthread_create failed\n");
            return 1;
        }
    pthread_join(r, NULL);
    for (int i = 0; i < WORKERS; i++) pthread_join(w[i], NULL);
    queue_close(&parsed);
    pthread_join(out, NULL);
    return 0;
}
