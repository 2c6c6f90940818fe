/* seed_readio.c: the kernel and libc writing into the persistent heap after a checkpoint.
 *
 * With CRTHREADS_TRACKER=mprotect every heap page is read-only after a checkpoint, and a system
 * call that writes into such a page fails with EFAULT unless crthreads opens the page first;
 * with uffd the kernel's writes are tracked without that. Either way the data the kernel wrote
 * must be part of the next checkpoint.
 *
 * usage:
 *   seed_readio first DATA
 *       Fresh start. Writes the text file DATA (512 lines of 64 bytes: "NNNNN:" + 57 letters +
 *       "\n"), allocates every destination buffer with malloc, and then, each time right after a
 *       checkpoint() (so the buffer's pages are write-protected again), reads into heap
 *       buffers with: read, pread, readv, preadv, recv, recvfrom and recvmsg (from a socketpair;
 *       recvmsg's msghdr and iovec array are in the heap too), fread (small, and large enough
 *       for glibc to read straight into the destination), fgets from a FILE opened before the
 *       checkpoint (its buffer already allocated, refilled after the checkpoint), fgets from a
 *       FILE opened after the checkpoint, fgets from a FILE opened after another FILE was
 *       closed and a checkpoint taken (its buffer may reuse the closed one's protected pages),
 *       fgetc, fscanf, getline into a NULL pointer and getline growing a small malloc'd buffer.
 *       Each call must succeed (no EFAULT) with the right count and bytes. Then a final
 *       checkpoint(), "READY" on stdout, and it waits to be killed.
 *   seed_readio check DATA
 *       The next run: restore() is 1 and every buffer in the restored heap holds the bytes the
 *       calls above put there. Exits 0.
 *   seed_readio setvbuf DATA
 *       Fresh start; writes DATA as `first` does. A FILE opened after a checkpoint gets, with
 *       setvbuf, a stream buffer that was malloc'd before it (so its pages are write-protected
 *       under mprotect); fgets, fgetc, fscanf and getline through that stream (libc fills the
 *       buffer with its own internal read) must work, and so must fread into another heap
 *       buffer. Then a checkpoint, "READY", and it waits to be killed.
 *   seed_readio setvbuf-check DATA
 *       The next run: restore() is 1 and the results and the stream buffer's contents are in
 *       the restored heap. Exits 0.
 * Exits 1 with a "FAIL" message on stderr when a check fails.
 * For LD_PRELOAD the program is built without -lcrthreads: the crthreads functions are weak.
 */
#include "check.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/uio.h>

#pragma weak checkpoint
#pragma weak restore
#pragma weak crthreads_root_get

#define LINE 64
#define LINES 512
#define FILE_LEN (LINE * LINES)
#define MAGIC 0x5eedc0de0c0c0004ULL

/* Byte `k` of the data file. */
static char data_at(size_t k) {
    size_t j = k / LINE, c = k % LINE;
    if (c == LINE - 1) return '\n';
    if (c < 5) {
        static const unsigned pow10[5] = {10000, 1000, 100, 10, 1};
        return (char)('0' + j / pow10[c] % 10);
    }
    if (c == 5) return ':';
    return (char)('a' + (j * 7 + c) % 26);
}

/* Checks that `p` holds bytes [off, off + n) of the data file. */
static void check_data(const char *p, size_t off, size_t n, const char *what) {
    for (size_t i = 0; i < n; i++)
        CHECK(p[i] == data_at(off + i), "%s: byte %zu is 0x%02x, expected 0x%02x ('%c') (file offset %zu)", what, i,
              (unsigned char)p[i], (unsigned char)data_at(off + i), data_at(off + i), off + i);
}

/* Checks that the C string `s` is line `j` of the data file (with its newline when `nl`). */
static void check_line(const char *s, size_t j, int nl, const char *what) {
    size_t want = nl ? LINE : LINE - 1;
    CHECK(strlen(s) == want, "%s: %zu characters, expected %zu: \"%s\"", what, strlen(s), want, s);
    check_data(s, j * LINE, want, what);
}

struct root {
    unsigned long long magic;
    char *rd, *prd, *rv[2], *prv[2];     /* read, pread, readv, preadv */
    char *rc, *rcf, *rcm[2];             /* recv, recvfrom, recvmsg */
    struct msghdr *msg;                  /* recvmsg's header, in the heap */
    struct iovec *iov;                   /* recvmsg's iovec array, in the heap */
    char *fr, *frbig;                    /* fread */
    char *fg_pinned, *fg_fresh, *fg_reuse; /* fgets */
    char *fc;                            /* fgetc */
    int *fs_num;                         /* fscanf */
    char *fs_str;
    char *gl_null, *gl_small;            /* getline */
    size_t gl_null_cap, gl_small_cap;
};

#define RD_LEN 12000
#define PRD_OFF 5000
#define PRD_LEN 1000
#define RV_OFF 100
static const size_t rv_len[2] = {700, 3000};
#define PRV_OFF 7000
static const size_t prv_len[2] = {1500, 2500};
#define RC_OFF 3000
#define RC_LEN 5000
#define RCF_OFF 9000
#define RCF_LEN 3000
#define RCM_OFF 13000
static const size_t rcm_len[2] = {1000, 2000};
#define FR_LEN 3000
#define FRBIG_LEN 20000
#define PINNED_LINE 100
#define FRESH_LINE 200
#define FC_LINE 300
#define FC_LEN 200
#define FS_LINE 400
#define GL_NULL_LINE 450
#define GL_SMALL_LINE 451
#define REUSE_LINE 500

static void ckpt(const char *before) {
    errno = 0;
    int rc = checkpoint();
    CHECK(rc == 0, "checkpoint() before %s returned %d (errno %d: %s)", before, rc, errno, last_error());
}

static char *buf(size_t n) {
    char *p = malloc(n);
    CHECK(p != NULL, "malloc(%zu) failed (errno %d)", n, errno);
    return p;
}

static FILE *open_at(const char *path, size_t line) {
    FILE *f = fopen(path, "r");
    CHECK(f != NULL, "fopen %s failed (errno %d)", path, errno);
    CHECK(fseek(f, (long)(line * LINE), SEEK_SET) == 0, "fseek failed (errno %d)", errno);
    return f;
}

/* A syscall-style result: n bytes expected, no error. */
static void expect_count(ssize_t got, size_t want, int err, const char *what) {
    CHECK(got == (ssize_t)want, "%s returned %zd (errno %d: %s), expected %zu", what, got, err, strerror(err), want);
}

static void verify_all(const struct root *r) {
    check_data(r->rd, 0, RD_LEN, "read");
    check_data(r->prd, PRD_OFF, PRD_LEN, "pread");
    check_data(r->rv[0], RV_OFF, rv_len[0], "readv buffer 0");
    check_data(r->rv[1], RV_OFF + rv_len[0], rv_len[1], "readv buffer 1");
    check_data(r->prv[0], PRV_OFF, prv_len[0], "preadv buffer 0");
    check_data(r->prv[1], PRV_OFF + prv_len[0], prv_len[1], "preadv buffer 1");
    check_data(r->rc, RC_OFF, RC_LEN, "recv");
    check_data(r->rcf, RCF_OFF, RCF_LEN, "recvfrom");
    check_data(r->rcm[0], RCM_OFF, rcm_len[0], "recvmsg buffer 0");
    check_data(r->rcm[1], RCM_OFF + rcm_len[0], rcm_len[1], "recvmsg buffer 1");
    check_data(r->fr, 0, FR_LEN, "fread");
    check_data(r->frbig, FR_LEN, FRBIG_LEN, "large fread");
    check_line(r->fg_pinned, PINNED_LINE, 1, "fgets (FILE opened before the checkpoint)");
    check_line(r->fg_fresh, FRESH_LINE, 1, "fgets (FILE opened after the checkpoint)");
    check_line(r->fg_reuse, REUSE_LINE, 1, "fgets (FILE opened after another was closed)");
    check_data(r->fc, FC_LINE * LINE, FC_LEN, "fgetc");
    CHECK(*r->fs_num == FS_LINE, "fscanf's number is %d, expected %d", *r->fs_num, FS_LINE);
    check_data(r->fs_str, FS_LINE * LINE + 6, LINE - 7, "fscanf's string");
    CHECK(r->fs_str[LINE - 7] == '\0', "fscanf's string is not terminated after %d letters", LINE - 7);
    CHECK(r->gl_null && r->gl_null_cap > LINE, "getline from NULL left %p / %zu", (void *)r->gl_null,
          r->gl_null_cap);
    check_line(r->gl_null, GL_NULL_LINE, 1, "getline into NULL");
    CHECK(r->gl_small_cap > LINE, "getline did not grow the small buffer (capacity %zu)", r->gl_small_cap);
    check_line(r->gl_small, GL_SMALL_LINE, 1, "getline into a small buffer");
}

/* Writes the data file from volatile (stack) memory. */
static void write_data(const char *path) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0, "cannot create %s (errno %d)", path, errno);
    char line[LINE];
    for (size_t j = 0; j < LINES; j++) {
        for (size_t c = 0; c < LINE; c++) line[c] = data_at(j * LINE + c);
        CHECK(write(fd, line, LINE) == LINE, "write %s failed (errno %d)", path, errno);
    }
    CHECK(close(fd) == 0, "close failed");
}

static void first(const char *path) {
    write_data(path);
    CHECK(restore() == 0, "restore() returned %d on a fresh start", restore());
    struct root *r = crthreads_root_get(sizeof *r);
    CHECK(r != NULL, "crthreads_root_get failed (errno %d: %s)", errno, last_error());
    static const struct root zero;
    CHECK(memcmp(r, &zero, sizeof *r) == 0, "the root is not zeroed on a fresh start");
    r->magic = MAGIC;
    r->rd = buf(RD_LEN);
    r->prd = buf(PRD_LEN);
    for (int i = 0; i < 2; i++) {
        r->rv[i] = buf(rv_len[i]);
        r->prv[i] = buf(prv_len[i]);
        r->rcm[i] = buf(rcm_len[i]);
    }
    r->rc = buf(RC_LEN);
    r->rcf = buf(RCF_LEN);
    r->msg = malloc(sizeof *r->msg);
    r->iov = malloc(2 * sizeof *r->iov);
    CHECK(r->msg && r->iov, "malloc failed");
    r->fr = buf(FR_LEN);
    r->frbig = buf(FRBIG_LEN);
    r->fg_pinned = buf(100);
    r->fg_fresh = buf(100);
    r->fg_reuse = buf(100);
    r->fc = buf(FC_LEN);
    r->fs_num = malloc(sizeof *r->fs_num);
    CHECK(r->fs_num != NULL, "malloc failed");
    r->fs_str = buf(LINE);
    r->gl_null = NULL;
    r->gl_null_cap = 0;
    r->gl_small_cap = 8;
    r->gl_small = buf(r->gl_small_cap);

    /* A FILE whose buffer exists before the checkpoints; the seek empties it. */
    FILE *pinned = fopen(path, "r");
    CHECK(pinned != NULL, "fopen failed (errno %d)", errno);
    CHECK(fgetc(pinned) == data_at(0), "fgetc on a fresh FILE");
    CHECK(fseek(pinned, PINNED_LINE * LINE, SEEK_SET) == 0, "fseek failed");

    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair failed (errno %d)", errno);
    char payload[FILE_LEN];
    for (size_t k = 0; k < FILE_LEN; k++) payload[k] = data_at(k);

    int fd = open(path, O_RDONLY);
    CHECK(fd >= 0, "open %s failed (errno %d)", path, errno);
    ssize_t n;

    ckpt("read");
    errno = 0;
    n = read(fd, r->rd, RD_LEN);
    expect_count(n, RD_LEN, errno, "read into the heap");
    check_data(r->rd, 0, RD_LEN, "read");

    ckpt("pread");
    errno = 0;
    n = pread(fd, r->prd, PRD_LEN, PRD_OFF);
    expect_count(n, PRD_LEN, errno, "pread into the heap");
    check_data(r->prd, PRD_OFF, PRD_LEN, "pread");

    ckpt("readv");
    CHECK(lseek(fd, RV_OFF, SEEK_SET) == RV_OFF, "lseek failed");
    struct iovec v[2] = {{r->rv[0], rv_len[0]}, {r->rv[1], rv_len[1]}};
    errno = 0;
    n = readv(fd, v, 2);
    expect_count(n, rv_len[0] + rv_len[1], errno, "readv into the heap");
    check_data(r->rv[0], RV_OFF, rv_len[0], "readv buffer 0");
    check_data(r->rv[1], RV_OFF + rv_len[0], rv_len[1], "readv buffer 1");

    ckpt("preadv");
    struct iovec pv[2] = {{r->prv[0], prv_len[0]}, {r->prv[1], prv_len[1]}};
    errno = 0;
    n = preadv(fd, pv, 2, PRV_OFF);
    expect_count(n, prv_len[0] + prv_len[1], errno, "preadv into the heap");
    check_data(r->prv[0], PRV_OFF, prv_len[0], "preadv buffer 0");
    check_data(r->prv[1], PRV_OFF + prv_len[0], prv_len[1], "preadv buffer 1");
    close(fd);

    ckpt("recv");
    CHECK(write(sv[0], payload + RC_OFF, RC_LEN) == RC_LEN, "write to the socket failed (errno %d)", errno);
    errno = 0;
    n = recv(sv[1], r->rc, RC_LEN, MSG_WAITALL);
    expect_count(n, RC_LEN, errno, "recv into the heap");
    check_data(r->rc, RC_OFF, RC_LEN, "recv");

    ckpt("recvfrom");
    CHECK(write(sv[0], payload + RCF_OFF, RCF_LEN) == RCF_LEN, "write to the socket failed (errno %d)", errno);
    errno = 0;
    n = recvfrom(sv[1], r->rcf, RCF_LEN, MSG_WAITALL, NULL, NULL);
    expect_count(n, RCF_LEN, errno, "recvfrom into the heap");
    check_data(r->rcf, RCF_OFF, RCF_LEN, "recvfrom");

    r->iov[0] = (struct iovec){r->rcm[0], rcm_len[0]};
    r->iov[1] = (struct iovec){r->rcm[1], rcm_len[1]};
    memset(r->msg, 0, sizeof *r->msg);
    r->msg->msg_iov = r->iov;
    r->msg->msg_iovlen = 2;
    ckpt("recvmsg");
    CHECK(write(sv[0], payload + RCM_OFF, rcm_len[0] + rcm_len[1]) == (ssize_t)(rcm_len[0] + rcm_len[1]),
          "write to the socket failed (errno %d)", errno);
    errno = 0;
    n = recvmsg(sv[1], r->msg, MSG_WAITALL);
    expect_count(n, rcm_len[0] + rcm_len[1], errno, "recvmsg into the heap");
    check_data(r->rcm[0], RCM_OFF, rcm_len[0], "recvmsg buffer 0");
    check_data(r->rcm[1], RCM_OFF + rcm_len[0], rcm_len[1], "recvmsg buffer 1");
    close(sv[0]);
    close(sv[1]);

    ckpt("fread");
    FILE *f = fopen(path, "r");
    CHECK(f != NULL, "fopen failed (errno %d)", errno);
    errno = 0;
    size_t got = fread(r->fr, 1, FR_LEN, f);
    CHECK(got == FR_LEN, "fread of %d bytes into the heap returned %zu (errno %d: %s, ferror %d)", FR_LEN, got, errno,
          strerror(errno), ferror(f));
    check_data(r->fr, 0, FR_LEN, "fread");
    ckpt("a large fread");
    errno = 0;
    got = fread(r->frbig, 1, FRBIG_LEN, f);
    CHECK(got == FRBIG_LEN, "fread of %d bytes into the heap returned %zu (errno %d: %s, ferror %d)", FRBIG_LEN, got,
          errno, strerror(errno), ferror(f));
    check_data(r->frbig, FR_LEN, FRBIG_LEN, "large fread");
    fclose(f);

    ckpt("fgets (FILE opened before the checkpoint)");
    errno = 0;
    char *s = fgets(r->fg_pinned, 100, pinned);
    CHECK(s == r->fg_pinned, "fgets from a FILE opened before the checkpoint returned %p (errno %d: %s, ferror %d)",
          (void *)s, errno, strerror(errno), ferror(pinned));
    check_line(r->fg_pinned, PINNED_LINE, 1, "fgets (FILE opened before the checkpoint)");
    fclose(pinned);

    ckpt("fgets (FILE opened after the checkpoint)");
    f = open_at(path, FRESH_LINE);
    errno = 0;
    s = fgets(r->fg_fresh, 100, f);
    CHECK(s == r->fg_fresh, "fgets from a FILE opened after the checkpoint returned %p (errno %d: %s, ferror %d)",
          (void *)s, errno, strerror(errno), ferror(f));
    check_line(r->fg_fresh, FRESH_LINE, 1, "fgets (FILE opened after the checkpoint)");
    fclose(f);

    ckpt("fgetc");
    f = open_at(path, FC_LINE);
    for (int i = 0; i < FC_LEN; i++) {
        errno = 0;
        int c = fgetc(f);
        CHECK(c != EOF, "fgetc %d returned EOF (errno %d: %s, ferror %d)", i, errno, strerror(errno), ferror(f));
        r->fc[i] = (char)c;
    }
    check_data(r->fc, FC_LINE * LINE, FC_LEN, "fgetc");
    fclose(f);

    ckpt("fscanf");
    f = open_at(path, FS_LINE);
    errno = 0;
    int items = fscanf(f, "%d:%63s", r->fs_num, r->fs_str);
    CHECK(items == 2, "fscanf into the heap matched %d items (errno %d: %s, ferror %d)", items, errno,
          strerror(errno), ferror(f));
    CHECK(*r->fs_num == FS_LINE, "fscanf's number is %d", *r->fs_num);
    check_data(r->fs_str, FS_LINE * LINE + 6, LINE - 7, "fscanf's string");
    fclose(f);

    ckpt("getline into NULL");
    f = open_at(path, GL_NULL_LINE);
    errno = 0;
    n = getline(&r->gl_null, &r->gl_null_cap, f);
    expect_count(n, LINE, errno, "getline into NULL");
    check_line(r->gl_null, GL_NULL_LINE, 1, "getline into NULL");
    ckpt("getline into a small buffer");
    errno = 0;
    n = getline(&r->gl_small, &r->gl_small_cap, f);
    expect_count(n, LINE, errno, "getline into a small buffer");
    check_line(r->gl_small, GL_SMALL_LINE, 1, "getline into a small buffer");
    fclose(f);

    /* Close a FILE, checkpoint, open another: its buffer may take the freed one's pages. */
    for (int round = 0; round < 3; round++) {
        f = open_at(path, 0);
        char tmp[100];
        CHECK(fgets(tmp, sizeof tmp, f) == tmp, "fgets into the stack failed (round %d, errno %d)", round, errno);
        fclose(f);
        ckpt("fgets (FILE opened after another was closed)");
        f = open_at(path, REUSE_LINE);
        errno = 0;
        s = fgets(r->fg_reuse, 100, f);
        CHECK(s == r->fg_reuse,
              "round %d: fgets from a FILE opened after another was closed and a checkpoint taken returned %p "
              "(errno %d: %s, ferror %d)",
              round, (void *)s, errno, strerror(errno), ferror(f));
        check_line(r->fg_reuse, REUSE_LINE, 1, "fgets (FILE opened after another was closed)");
        fclose(f);
    }

    verify_all(r);
    ckpt("the final checkpoint");
    WAIT_TO_BE_KILLED();
}

static void check(void) {
    int rs = restore();
    CHECK(rs == 1, "restore() returned %d, expected 1 (restored)", rs);
    struct root *r = crthreads_root_get(sizeof *r);
    CHECK(r != NULL, "crthreads_root_get failed (errno %d: %s)", errno, last_error());
    CHECK(r->magic == MAGIC, "restored root has magic %llx", r->magic);
    verify_all(r);
    printf("done\n");
}

#define VB_LEN 8192
#define VB_LINE 20

struct vroot {
    unsigned long long magic;
    char *vb;      /* the stream buffer given to setvbuf */
    char *line;    /* fgets */
    char *chars;   /* fgetc */
    int *num;      /* fscanf */
    char *word;
    char *gl;      /* getline */
    size_t gl_cap;
    char *fr;      /* fread */
};

/* Lines VB_LINE .. VB_LINE+3 are read through the stream, then fread takes FR_LEN bytes. */
static void verify_vroot(const struct vroot *r) {
    check_line(r->line, VB_LINE, 1, "fgets through a setvbuf heap buffer");
    check_data(r->chars, (VB_LINE + 1) * LINE, LINE, "fgetc through a setvbuf heap buffer");
    CHECK(*r->num == VB_LINE + 2, "fscanf through a setvbuf heap buffer read %d, expected %d", *r->num, VB_LINE + 2);
    check_data(r->word, (VB_LINE + 2) * LINE + 6, LINE - 7, "fscanf's string through a setvbuf heap buffer");
    CHECK(r->gl != NULL, "getline through a setvbuf heap buffer left NULL");
    check_line(r->gl, VB_LINE + 3, 1, "getline through a setvbuf heap buffer");
    check_data(r->fr, (VB_LINE + 4) * LINE, FR_LEN, "fread through a setvbuf heap buffer");
    /* The stream buffer was filled by libc's internal read: it holds line VB_LINE somewhere. */
    char want[LINE];
    for (size_t c = 0; c < LINE; c++) want[c] = data_at(VB_LINE * LINE + c);
    CHECK(memmem(r->vb, VB_LEN, want, LINE) != NULL, "the setvbuf heap buffer does not hold line %d", VB_LINE);
}

static void setvbuf_first(const char *path) {
    write_data(path);
    CHECK(restore() == 0, "restore() returned %d on a fresh start", restore());
    struct vroot *r = crthreads_root_get(sizeof *r);
    CHECK(r != NULL, "crthreads_root_get failed (errno %d: %s)", errno, last_error());
    r->magic = MAGIC;
    r->vb = buf(VB_LEN);
    r->line = buf(100);
    r->chars = buf(LINE);
    r->num = malloc(sizeof *r->num);
    CHECK(r->num != NULL, "malloc failed");
    r->word = buf(LINE);
    r->fr = buf(FR_LEN);
    ckpt("fopen + setvbuf");
    FILE *f = open_at(path, VB_LINE);
    CHECK(setvbuf(f, r->vb, _IOFBF, VB_LEN) == 0, "setvbuf failed");
    errno = 0;
    char *s = fgets(r->line, 100, f);
    CHECK(s == r->line,
          "fgets through a stream whose setvbuf buffer was malloc'd before the checkpoint returned %p (errno %d: %s, "
          "ferror %d)",
          (void *)s, errno, strerror(errno), ferror(f));
    check_line(r->line, VB_LINE, 1, "fgets through a setvbuf heap buffer");
    for (int i = 0; i < LINE; i++) {
        int c = fgetc(f);
        CHECK(c != EOF, "fgetc %d through a setvbuf heap buffer returned EOF (ferror %d)", i, ferror(f));
        r->chars[i] = (char)c;
    }
    int items = fscanf(f, "%d:%63s\n", r->num, r->word);
    CHECK(items == 2, "fscanf through a setvbuf heap buffer matched %d items (ferror %d)", items, ferror(f));
    errno = 0;
    ssize_t n = getline(&r->gl, &r->gl_cap, f);
    expect_count(n, LINE, errno, "getline through a setvbuf heap buffer");
    ckpt("fread through a setvbuf heap buffer");
    errno = 0;
    size_t got = fread(r->fr, 1, FR_LEN, f);
    CHECK(got == FR_LEN, "fread through a setvbuf heap buffer returned %zu (errno %d: %s, ferror %d)", got, errno,
          strerror(errno), ferror(f));
    verify_vroot(r);
    fclose(f);
    ckpt("the final checkpoint");
    WAIT_TO_BE_KILLED();
}

static void setvbuf_check(void) {
    int rs = restore();
    CHECK(rs == 1, "restore() returned %d, expected 1 (restored)", rs);
    struct vroot *r = crthreads_root_get(sizeof *r);
    CHECK(r != NULL, "crthreads_root_get failed (errno %d: %s)", errno, last_error());
    CHECK(r->magic == MAGIC, "restored root has magic %llx", r->magic);
    verify_vroot(r);
    printf("done\n");
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    CHECK(checkpoint && restore && crthreads_root_get && crthreads_last_error,
          "the crthreads functions are not available (library not loaded)");
    CHECK(argc == 3, "usage: seed_readio first|check|setvbuf|setvbuf-check DATA");
    if (strcmp(argv[1], "first") == 0)
        first(argv[2]);
    else if (strcmp(argv[1], "check") == 0)
        check();
    else if (strcmp(argv[1], "setvbuf") == 0)
        setvbuf_first(argv[2]);
    else if (strcmp(argv[1], "setvbuf-check") == 0)
        setvbuf_check();
    else
        CHECK(0, "bad mode %s", argv[1]);
    return 0;
}
