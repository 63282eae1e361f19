/*
 * The session pool: per node, a list of authenticated sessions, each either
 * in use by one thread or idle. Connecting happens outside the pool lock;
 * a slot is reserved first (`connecting`) so the per-node and global caps
 * hold while handshakes run. A timer thread closes sessions idle longer
 * than the TTL and sends keepalives on the others (libssh2 only sends them
 * from inside calls), taking each session like a caller would so no
 * session is ever used by two threads.
 */
#include "internal.h"

#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct ssh_node {
    char id[64];
    uint8_t gen[16]; /* the target's current hash */
    struct ssh_session *sessions;
    int open;       /* sessions in the list */
    int connecting; /* slots reserved by callers connecting now */
    int busy;
    struct ssh_pool_stats stats;
    struct ssh_node *next;
};

struct ssh_pool {
    struct ssh_pool_config cfg;
    pthread_mutex_t lock;
    pthread_cond_t cond; /* a session was released or closed */
    struct ssh_node *nodes;
    int open; /* all nodes, including connecting */
    bool stopping;
    pthread_t timer;
    pthread_cond_t timer_cond;
};

static void target_gen(const struct ssh_target *t, uint8_t out[16])
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, 16);
    char port[16];
    snprintf(port, sizeof port, "%d", t->port);
    const char *parts[] = {t->host, port, t->user, t->fingerprint ? t->fingerprint : "",
                           t->passphrase ? t->passphrase : ""};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
        crypto_generichash_update(&st, (const uint8_t *)parts[i], strlen(parts[i]) + 1);
    crypto_generichash_update(&st, (const uint8_t *)t->private_key, t->private_key_len);
    crypto_generichash_final(&st, out, 16);
}

static struct ssh_node *node_find(struct ssh_pool *p, const char *id, bool create)
{
    for (struct ssh_node *n = p->nodes; n; n = n->next)
        if (strcmp(n->id, id) == 0)
            return n;
    if (!create)
        return NULL;
    struct ssh_node *n = calloc(1, sizeof *n);
    if (!n)
        return NULL;
    sb_strlcpy(n->id, id, sizeof n->id);
    n->next = p->nodes;
    p->nodes = n;
    return n;
}

static void unlink_session(struct ssh_node *n, struct ssh_session *s)
{
    for (struct ssh_session **pp = &n->sessions; *pp; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            s->next = NULL;
            return;
        }
    }
}

static void *timer_main(void *arg);

struct ssh_pool *ssh_pool_new(const struct ssh_pool_config *cfg, struct sb_err *err)
{
    struct ssh_pool *p = calloc(1, sizeof *p);
    if (!p) {
        sb_error(err, SB_ENOMEM, "out of memory");
        return NULL;
    }
    p->cfg = *cfg;
    if (p->cfg.per_node <= 0)
        p->cfg.per_node = 3;
    if (p->cfg.global_max <= 0)
        p->cfg.global_max = 256;
    if (p->cfg.idle_ttl_ms <= 0)
        p->cfg.idle_ttl_ms = 300000;
    if (p->cfg.keepalive_ms <= 0)
        p->cfg.keepalive_ms = 30000;
    if (p->cfg.connect_timeout_ms <= 0)
        p->cfg.connect_timeout_ms = 10000;
    if (p->cfg.acquire_timeout_ms <= 0)
        p->cfg.acquire_timeout_ms = 10000;
    pthread_mutex_init(&p->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cond, &ca);
    pthread_cond_init(&p->timer_cond, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&p->timer, NULL, timer_main, p) != 0) {
        sb_error(err, SB_EINTERNAL, "cannot start the SSH pool timer");
        free(p);
        return NULL;
    }
    return p;
}

void ssh_pool_free(struct ssh_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    p->stopping = true;
    pthread_cond_broadcast(&p->timer_cond);
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
    pthread_join(p->timer, NULL);
    for (struct ssh_node *n = p->nodes, *nn; n; n = nn) {
        nn = n->next;
        for (struct ssh_session *s = n->sessions, *sn; s; s = sn) {
            sn = s->next;
            ssh_session_close(s);
        }
        free(n);
    }
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->cond);
    pthread_cond_destroy(&p->timer_cond);
    free(p);
}

static struct timespec mono_deadline(int64_t deadline_ms)
{
    struct timespec ts = {.tv_sec = deadline_ms / 1000, .tv_nsec = (deadline_ms % 1000) * 1000000};
    return ts;
}

/* Closes one idle session of another node to make room under the global cap.
 * Called with the lock held; returns the session to close after unlocking. */
static struct ssh_session *evict_one(struct ssh_pool *p, struct ssh_node *except)
{
    for (struct ssh_node *n = p->nodes; n; n = n->next) {
        if (n == except)
            continue;
        for (struct ssh_session *s = n->sessions; s; s = s->next) {
            if (!s->in_use) {
                unlink_session(n, s);
                n->open--;
                p->open--;
                return s;
            }
        }
    }
    return NULL;
}

int ssh_pool_acquire(struct ssh_pool *p, const struct ssh_target *t, struct ssh_session **out,
                     struct ssh_diag *diag, struct sb_err *err)
{
    *out = NULL;
    if (diag)
        memset(diag, 0, sizeof *diag);
    uint8_t gen[16];
    target_gen(t, gen);
    int64_t deadline = time_mono_ms() + p->cfg.acquire_timeout_ms;
    struct ssh_session *doomed[8];
    int n_doomed = 0;
    bool waited = false;

    pthread_mutex_lock(&p->lock);
    struct ssh_node *n = node_find(p, t->node_id, true);
    if (!n) {
        pthread_mutex_unlock(&p->lock);
        return sb_error(err, SB_ENOMEM, "out of memory");
    }
    if (memcmp(n->gen, gen, 16) != 0)
        memcpy(n->gen, gen, 16); /* older sessions are closed below or at release */
    for (;;) {
        if (p->stopping) {
            pthread_mutex_unlock(&p->lock);
            for (int i = 0; i < n_doomed; i++)
                ssh_session_close(doomed[i]);
            return sb_error(err, SB_EUNAVAIL, "shutting down");
        }
        /* An idle session for this target: take it, dropping stale and dead ones. */
        struct ssh_session *found = NULL;
        for (struct ssh_session *s = n->sessions, *sn; s; s = sn) {
            sn = s->next;
            if (s->in_use)
                continue;
            if (memcmp(s->gen, gen, 16) != 0 || ssh_session_looks_dead(s)) {
                unlink_session(n, s);
                n->open--;
                p->open--;
                if (n_doomed < 8)
                    doomed[n_doomed++] = s;
                else
                    ssh_session_close(s); /* rare: under the lock, but bounded by a 1 s timeout */
                continue;
            }
            found = s;
            break;
        }
        if (found) {
            found->in_use = true;
            n->busy++;
            n->stats.hits++;
            pthread_mutex_unlock(&p->lock);
            for (int i = 0; i < n_doomed; i++)
                ssh_session_close(doomed[i]);
            *out = found;
            return 0;
        }
        struct ssh_session *evicted = NULL;
        if (n->open + n->connecting < p->cfg.per_node && p->open >= p->cfg.global_max)
            evicted = evict_one(p, n);
        if (n->open + n->connecting < p->cfg.per_node && p->open < p->cfg.global_max) {
            n->connecting++;
            p->open++;
            n->stats.misses++;
            pthread_mutex_unlock(&p->lock);
            for (int i = 0; i < n_doomed; i++)
                ssh_session_close(doomed[i]);
            ssh_session_close(evicted);
            struct ssh_session *s = NULL;
            int rc = ssh_connect(t, p->cfg.connect_timeout_ms, &s, diag, err);
            pthread_mutex_lock(&p->lock);
            n->connecting--;
            if (rc) {
                p->open--;
                n->stats.failures++;
                pthread_cond_broadcast(&p->cond);
                pthread_mutex_unlock(&p->lock);
                return rc;
            }
            s->node = n;
            memcpy(s->gen, gen, 16);
            s->in_use = true;
            s->next = n->sessions;
            n->sessions = s;
            n->open++;
            n->busy++;
            pthread_mutex_unlock(&p->lock);
            *out = s;
            return 0;
        }
        if (evicted) {
            /* Evicted but still at the node cap: put nothing back, just close. */
            pthread_mutex_unlock(&p->lock);
            ssh_session_close(evicted);
            pthread_mutex_lock(&p->lock);
            continue;
        }
        if (!waited) {
            n->stats.waits++;
            waited = true;
        }
        struct timespec ts = mono_deadline(deadline);
        if (pthread_cond_timedwait(&p->cond, &p->lock, &ts) != 0 && time_mono_ms() >= deadline) {
            n->stats.timeouts++;
            int busy = n->busy;
            pthread_mutex_unlock(&p->lock);
            for (int i = 0; i < n_doomed; i++)
                ssh_session_close(doomed[i]);
            if (diag)
                diag->failure = SSH_FAIL_BUSY;
            return sb_error(err, SB_EUNAVAIL,
                            "all %d SSH sessions of the node stayed busy for %d ms; try again later", busy,
                            p->cfg.acquire_timeout_ms);
        }
    }
}

void ssh_pool_release(struct ssh_pool *p, struct ssh_session *s, bool broken)
{
    if (!s)
        return;
    struct ssh_node *n = s->node;
    pthread_mutex_lock(&p->lock);
    if (s->live_channels > 0) {
        /* A terminal still runs on it: closing or reusing it would cut the
         * user off. A caller bug; keep the session busy rather than do that. */
        pthread_mutex_unlock(&p->lock);
        log_error("ssh session released with live channels; kept", "node=%s channels=%d", n->id,
                  s->live_channels);
        return;
    }
    s->in_use = false;
    n->busy--;
    bool drop = broken || s->broken || memcmp(s->gen, n->gen, 16) != 0 || p->stopping;
    if (drop) {
        unlink_session(n, s);
        n->open--;
        p->open--;
    } else {
        s->idle_since_ms = time_mono_ms();
        s->keepalive_at_ms = s->idle_since_ms + p->cfg.keepalive_ms;
    }
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
    if (drop)
        ssh_session_close(s);
}

void ssh_pool_forget(struct ssh_pool *p, const char *node_id)
{
    struct ssh_session *idle = NULL;
    pthread_mutex_lock(&p->lock);
    struct ssh_node *n = node_find(p, node_id, false);
    if (n) {
        memset(n->gen, 0, sizeof n->gen);
        for (struct ssh_session *s = n->sessions, *sn; s; s = sn) {
            sn = s->next;
            if (!s->in_use) {
                unlink_session(n, s);
                n->open--;
                p->open--;
                s->next = idle;
                idle = s;
            }
        }
        memset(&n->stats, 0, sizeof n->stats);
    }
    pthread_mutex_unlock(&p->lock);
    for (struct ssh_session *s = idle, *sn; s; s = sn) {
        sn = s->next;
        ssh_session_close(s);
    }
}

void ssh_pool_stats(struct ssh_pool *p, const char *node_id, struct ssh_pool_stats *out)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&p->lock);
    for (struct ssh_node *n = p->nodes; n; n = n->next) {
        if (node_id && strcmp(n->id, node_id) != 0)
            continue;
        out->open += (uint64_t)n->open;
        out->busy += (uint64_t)n->busy;
        out->hits += n->stats.hits;
        out->misses += n->stats.misses;
        out->failures += n->stats.failures;
        out->waits += n->stats.waits;
        out->timeouts += n->stats.timeouts;
        for (struct ssh_session *s = n->sessions; s; s = s->next)
            out->channels += (uint64_t)__atomic_load_n(&s->live_channels, __ATOMIC_RELAXED);
    }
    pthread_mutex_unlock(&p->lock);
}

/* ---- the timer ---------------------------------------------------------- */

static void *timer_main(void *arg)
{
    struct ssh_pool *p = arg;
    pthread_mutex_lock(&p->lock);
    while (!p->stopping) {
        struct timespec ts = mono_deadline(time_mono_ms() + 1000);
        pthread_cond_timedwait(&p->timer_cond, &p->lock, &ts);
        if (p->stopping)
            break;
        int64_t now = time_mono_ms();
        /* Take the sessions that need work, as a caller would, then work unlocked. */
        struct ssh_session *expire = NULL, *batch[64];
        int nb = 0;
        for (struct ssh_node *n = p->nodes; n; n = n->next) {
            for (struct ssh_session *s = n->sessions, *sn; s; s = sn) {
                sn = s->next;
                if (s->in_use)
                    continue;
                if (now - s->idle_since_ms >= p->cfg.idle_ttl_ms) {
                    unlink_session(n, s);
                    n->open--;
                    p->open--;
                    s->next = expire;
                    expire = s;
                } else if (now >= s->keepalive_at_ms && nb < 64) {
                    s->in_use = true;
                    n->busy++;
                    batch[nb++] = s;
                }
            }
        }
        pthread_mutex_unlock(&p->lock);
        for (struct ssh_session *s = expire, *sn; s; s = sn) {
            sn = s->next;
            ssh_session_close(s);
        }
        for (int i = 0; i < nb; i++) {
            int next = 0;
            libssh2_session_set_blocking(batch[i]->s, 1);
            libssh2_session_set_timeout(batch[i]->s, 5000);
            int rc = libssh2_keepalive_send(batch[i]->s, &next);
            libssh2_session_set_timeout(batch[i]->s, SSH_OP_TIMEOUT_MS);
            if (rc != 0 || ssh_session_looks_dead(batch[i]))
                batch[i]->broken = true;
        }
        pthread_mutex_lock(&p->lock);
        now = time_mono_ms();
        struct ssh_session *dead = NULL;
        for (int i = 0; i < nb; i++) {
            struct ssh_session *s = batch[i];
            struct ssh_node *n = s->node;
            s->in_use = false;
            n->busy--;
            s->keepalive_at_ms = now + p->cfg.keepalive_ms;
            if (s->broken || memcmp(s->gen, n->gen, 16) != 0) {
                unlink_session(n, s);
                n->open--;
                p->open--;
                s->next = dead;
                dead = s;
            }
        }
        if (nb)
            pthread_cond_broadcast(&p->cond);
        pthread_mutex_unlock(&p->lock);
        for (struct ssh_session *s = dead, *sn; s; s = sn) {
            sn = s->next;
            ssh_session_close(s);
        }
        pthread_mutex_lock(&p->lock);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

/* ---- exec through the pool ----------------------------------------------- */

int ssh_pool_exec(struct ssh_pool *p, const struct ssh_target *t, const struct ssh_exec_opts *o,
                  struct ssh_exec_result *r, struct ssh_diag *diag, struct sb_err *err)
{
    for (int attempt = 0;; attempt++) {
        struct ssh_session *s = NULL;
        int rc = ssh_pool_acquire(p, t, &s, diag, err);
        if (rc)
            return rc;
        rc = ssh_exec(s, o, r, err);
        bool broken = s->broken;
        ssh_pool_release(p, s, broken);
        /* A pooled session found dead before the command started: once more on a fresh one. */
        if (rc && broken && !r->started && attempt == 0) {
            log_info("ssh session lost; retrying on a fresh one", "node=%s", t->node_id);
            continue;
        }
        if (rc && diag && diag->failure == SSH_FAIL_NONE)
            diag->failure = SSH_FAIL_IO;
        return rc;
    }
}
