/*
 * What a C caller sees when things go wrong, run against a real daemon by
 * tests/examples.rs: each check prints "ok: ..." or "FAILED: ..."; the exit
 * status is the number of failed checks.
 *
 * Usage: errors URL
 */
#define _GNU_SOURCE /* memmem */

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "busd.h"

static int failures = 0;

static void check(int ok, const char *what) {
    printf("%s: %s\n", ok ? "ok" : "FAILED", what);
    if (!ok) {
        printf("  last error: %s\n", busd_last_error());
        failures++;
    }
}

static int contains(const char *text, const char *part) {
    return text != NULL && strstr(text, part) != NULL;
}

static void never(const busd_message *msg, void *user_data) {
    (void)msg;
    (void)user_data;
}

/* Answers, then tries to answer again; keeps the second result. */
static void answer_twice(busd_call *call, void *user_data) {
    busd_result *second = user_data;
    busd_call_respond(call, (const uint8_t *)"first", 5);
    *second = busd_call_respond(call, (const uint8_t *)"second", 6);
}

static void answer_nothing(busd_call *call, void *user_data) {
    (void)call;
    (void)user_data;
}

/* Answers with the request's payload. */
static void echo(busd_call *call, void *user_data) {
    (void)user_data;
    size_t len = 0;
    const uint8_t *payload = busd_call_payload(call, &len);
    busd_call_respond(call, payload, len);
}

/* Waits up to 10 s for `*flag`, set under `lock`; returns it. */
static int wait_flag(pthread_mutex_t *lock, pthread_cond_t *changed, const int *flag) {
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 10;
    pthread_mutex_lock(lock);
    while (!*flag && pthread_cond_timedwait(changed, lock, &deadline) == 0) {
    }
    int set = *flag;
    pthread_mutex_unlock(lock);
    return set;
}

/* A subscription whose callback calls a service with the message. */
struct asker {
    pthread_mutex_t lock;
    pthread_cond_t done;
    const busd_client *client;
    int answered;
    busd_result rc;
    char answer[32];
};

static void ask(const busd_message *msg, void *user_data) {
    struct asker *a = user_data;
    size_t len = 0;
    const uint8_t *payload = busd_message_payload(msg, &len);
    busd_response *response = NULL;
    busd_result rc = busd_request(a->client, "errors.echo", payload, len, 5000, &response);
    pthread_mutex_lock(&a->lock);
    a->rc = rc;
    if (rc == BUSD_RESULT_OK) {
        payload = busd_response_payload(response, &len);
        len = len < sizeof a->answer ? len : sizeof a->answer - 1;
        memcpy(a->answer, payload, len);
        a->answer[len] = '\0';
    }
    a->answered = 1;
    pthread_cond_signal(&a->done);
    pthread_mutex_unlock(&a->lock);
    busd_response_free(response);
}

/* A subscription whose callback frees it on the first message. */
struct self_freeing {
    pthread_mutex_t lock;
    pthread_cond_t done;
    busd_subscription *sub;
    int freed;
};

static void free_myself(const busd_message *msg, void *user_data) {
    (void)msg;
    struct self_freeing *s = user_data;
    pthread_mutex_lock(&s->lock);
    busd_subscription_free(s->sub);
    s->sub = NULL;
    s->freed = 1;
    pthread_cond_signal(&s->done);
    pthread_mutex_unlock(&s->lock);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: errors URL\n");
        return 2;
    }
    busd_client *client = (busd_client *)&failures; /* not NULL: a failure must reset it */
    busd_result rc;

    rc = busd_connect("http://127.0.0.1:1", &client);
    check(rc == BUSD_RESULT_CONNECT && client == NULL, "an unknown scheme fails with CONNECT");
    check(contains(busd_last_error(), "http://127.0.0.1:1"), "the message names the URL");
    check(contains(busd_strerror(rc), "CONNECT"), "busd_strerror names the code");
    check(strcmp(busd_strerror(12345), "unknown busd_result") == 0, "unknown codes are named so");

    rc = busd_connect(NULL, &client);
    check(rc == BUSD_RESULT_NULL_ARGUMENT, "a NULL url fails with NULL_ARGUMENT");
    check(strcmp(busd_last_error(), "url is NULL") == 0, "the message names the argument");

    rc = busd_connect_package(argv[1], "not a package name", NULL, &client);
    check(rc == BUSD_RESULT_CONFIG, "a malformed package name fails with CONFIG");

    if (busd_connect(argv[1], &client) != BUSD_RESULT_OK) {
        printf("FAILED: connect to %s: %s\n", argv[1], busd_last_error());
        return 1;
    }

    rc = busd_publish(client, "errors.*", NULL, 0);
    check(rc == BUSD_RESULT_INVALID_SUBJECT, "publishing to a wildcard fails with INVALID_SUBJECT");
    rc = busd_publish(client, "errors.\xff", NULL, 0);
    check(rc == BUSD_RESULT_INVALID_ARGUMENT, "a subject that is not UTF-8 is INVALID_ARGUMENT");
    rc = busd_publish(client, "errors.payload", NULL, 3);
    check(rc == BUSD_RESULT_NULL_ARGUMENT, "a NULL payload with a length is NULL_ARGUMENT");
    rc = busd_publish(NULL, "errors.payload", NULL, 0);
    check(rc == BUSD_RESULT_NULL_ARGUMENT, "a NULL client is NULL_ARGUMENT");

    busd_subscription *sub = (busd_subscription *)&failures;
    rc = busd_subscribe_callback(client, "errors.cb", NULL, NULL, NULL, &sub);
    check(rc == BUSD_RESULT_NULL_ARGUMENT && sub == NULL, "a NULL callback is NULL_ARGUMENT");
    rc = busd_subscribe_callback(client, "errors.cb", NULL, never, NULL, &sub);
    check(rc == BUSD_RESULT_OK, "a callback subscription");
    busd_message *msg = NULL;
    rc = busd_subscription_next(sub, 0, &msg);
    check(rc == BUSD_RESULT_MISUSE && msg == NULL, "next() on a callback subscription is MISUSE");
    busd_subscription_free(sub);

    busd_result second = BUSD_RESULT_OK;
    busd_service *twice = NULL;
    busd_response *response = NULL;
    rc = busd_serve(client, "errors.twice", answer_twice, &second, &twice);
    check(rc == BUSD_RESULT_OK, "serve errors.twice");
    rc = busd_request(client, "errors.twice", NULL, 0, 5000, &response);
    size_t len = 0;
    const uint8_t *payload = busd_response_payload(response, &len);
    check(rc == BUSD_RESULT_OK && len == 5 && memcmp(payload, "first", 5) == 0,
          "the first answer is the one the caller gets");
    busd_response_free(response);
    response = NULL;
    busd_service_free(twice); /* joins its thread: `second` is written */
    check(second == BUSD_RESULT_MISUSE, "answering twice is MISUSE");

    busd_service *silent = NULL;
    rc = busd_serve(client, "errors.silent", answer_nothing, NULL, &silent);
    check(rc == BUSD_RESULT_OK, "serve errors.silent");
    rc = busd_request(client, "errors.silent", NULL, 0, 5000, &response);
    payload = busd_response_payload(response, &len);
    check(rc == BUSD_RESULT_OK && busd_response_status(response) == BUSD_STATUS_FAILURE,
          "a handler that does not answer is answered FAILURE at once");
    check(len > 0 && memmem(payload, len, "without answering", 17) != NULL,
          "the failure says the handler did not answer");
    busd_response_free(response);
    busd_service_free(silent);

    struct self_freeing self = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, 0};
    pthread_mutex_lock(&self.lock);
    rc = busd_subscribe_callback(client, "errors.self", NULL, free_myself, &self, &self.sub);
    pthread_mutex_unlock(&self.lock);
    check(rc == BUSD_RESULT_OK, "a subscription that frees itself");
    busd_publish(client, "errors.self", NULL, 0);
    int freed = wait_flag(&self.lock, &self.done, &self.freed);
    check(freed, "a callback may free its own subscription");

    busd_service *echoing = NULL;
    busd_subscription *asking = NULL;
    struct asker asker = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, client, 0, 0, ""};
    rc = busd_serve(client, "errors.echo", echo, NULL, &echoing);
    check(rc == BUSD_RESULT_OK, "serve errors.echo");
    rc = busd_subscribe_callback(client, "errors.ask", NULL, ask, &asker, &asking);
    check(rc == BUSD_RESULT_OK, "a subscription whose callback makes requests");
    busd_publish(client, "errors.ask", (const uint8_t *)"marco", 5);
    int answered = wait_flag(&asker.lock, &asker.done, &asker.answered);
    check(answered && asker.rc == BUSD_RESULT_OK && strcmp(asker.answer, "marco") == 0,
          "a callback may call back into the library");
    busd_subscription_free(asking);
    busd_service_free(echoing);

    busd_client_free(client);
    busd_client_free(NULL);
    busd_subscription_free(NULL);
    busd_message_free(NULL);
    check(1, "freeing NULL does nothing");
    printf("%d failed\n", failures);
    return failures;
}
