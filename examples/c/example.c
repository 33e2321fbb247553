/*
 * busd from C: connect, subscribe with a callback and by waiting, publish,
 * serve a service and call it.
 *
 * Usage: example [URL [PFN TOKEN_FILE]]
 *   no URL          busd_connect_default: BUSD_URL, else the default socket
 *   URL             tcp://127.0.0.1:PORT, unix:///PATH or shm:///PATH
 *   PFN TOKEN_FILE  connect as that package, proven by its token
 *
 * Build (from the repository root, after `cargo build -p busd-capi`):
 *   cc -std=c11 -Wall -Wextra -I crates/busd-capi/include examples/c/example.c \
 *      target/debug/libbusd_capi.a -lpthread -ldl -lm -lrt -lutil -o example
 * or against the shared library:
 *   cc ... examples/c/example.c -L target/debug -lbusd_capi -Wl,-rpath,target/debug
 *
 * Exits 0 when every step did what it should; prints each step on stdout.
 */
#define _POSIX_C_SOURCE 200809L

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "busd.h"

/* How long to wait for anything; generous, for runs under valgrind. */
#define WAIT_MS 10000

/* What the subscription callback saw, shared with main. */
struct inbox {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    int received;
};

static int report(const char *what, busd_result code) {
    fprintf(stderr, "%s failed: %s\n  why: %s\n", what, busd_strerror((int)code), busd_last_error());
    return 1;
}

/* Runs on the subscription's own library thread, one message at a time. */
static void on_greeting(const busd_message *msg, void *user_data) {
    struct inbox *inbox = user_data;
    size_t len = 0;
    const uint8_t *payload = busd_message_payload(msg, &len);
    const char *lang = busd_message_header(msg, "lang");
    const char *pfn = busd_message_sender_pfn(msg);
    printf("callback: %s \"%.*s\" lang=%s from %s\n", busd_message_subject(msg), (int)len,
           (const char *)payload, lang ? lang : "-", pfn ? pfn : "an unpackaged client");
    fflush(stdout);

    pthread_mutex_lock(&inbox->lock);
    inbox->received++;
    pthread_cond_signal(&inbox->changed);
    pthread_mutex_unlock(&inbox->lock);
}

/* Waits until the inbox has `count` messages; 0 on success. */
static int wait_for(struct inbox *inbox, int count) {
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += WAIT_MS / 1000;
    int rc = 0;
    pthread_mutex_lock(&inbox->lock);
    while (inbox->received < count && rc == 0) {
        rc = pthread_cond_timedwait(&inbox->changed, &inbox->lock, &deadline);
    }
    int ok = inbox->received >= count;
    pthread_mutex_unlock(&inbox->lock);
    return ok ? 0 : 1;
}

/* The service: answers with the request in upper case; runs on the
 * service's own library thread. */
static void on_upper(busd_call *call, void *user_data) {
    (void)user_data;
    size_t len = 0;
    const uint8_t *payload = busd_call_payload(call, &len);
    char upper[256];
    if (len > sizeof upper) {
        const char *why = "too long to shout";
        busd_call_respond_failure(call, (const uint8_t *)why, strlen(why));
        return;
    }
    for (size_t i = 0; i < len; i++) {
        upper[i] = (char)toupper(payload[i]);
    }
    busd_result rc = busd_call_respond(call, (const uint8_t *)upper, len);
    if (rc != BUSD_RESULT_OK) {
        report("busd_call_respond", rc);
    }
}

static busd_result connect_from_args(int argc, char **argv, busd_client **client) {
    if (argc >= 4) {
        return busd_connect_package(argv[1], argv[2], argv[3], client);
    }
    if (argc >= 2) {
        return busd_connect(argv[1], client);
    }
    return busd_connect_default(client);
}

int main(int argc, char **argv) {
    int failed = 1;
    busd_client *client = NULL;
    busd_subscription *greetings = NULL;
    busd_subscription *pulled = NULL;
    busd_service *upper = NULL;
    busd_message *msg = NULL;
    busd_response *response = NULL;
    struct inbox inbox = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
    busd_result rc;

    printf("busd %s\n", busd_version());
    if ((rc = connect_from_args(argc, argv, &client)) != BUSD_RESULT_OK) {
        report("connect", rc);
        goto out;
    }
    printf("connected\n");

    /* 1. A subscription with a callback, and a message with a header. */
    rc = busd_subscribe_callback(client, "demo.greetings.>", NULL, on_greeting, &inbox, &greetings);
    if (rc != BUSD_RESULT_OK) {
        report("busd_subscribe_callback", rc);
        goto out;
    }
    const char *hello = "hello from C";
    busd_header headers[] = {{"lang", "c"}};
    rc = busd_publish_with_headers(client, "demo.greetings.c", headers, 1, (const uint8_t *)hello,
                                   strlen(hello));
    if (rc != BUSD_RESULT_OK) {
        report("busd_publish_with_headers", rc);
        goto out;
    }
    if (wait_for(&inbox, 1) != 0) {
        fprintf(stderr, "the callback never got the greeting\n");
        goto out;
    }

    /* 2. A subscription read by waiting, with a timeout. */
    if ((rc = busd_subscribe(client, "demo.pull", NULL, &pulled)) != BUSD_RESULT_OK) {
        report("busd_subscribe", rc);
        goto out;
    }
    if ((rc = busd_publish(client, "demo.pull", (const uint8_t *)"pulled", 6)) != BUSD_RESULT_OK) {
        report("busd_publish", rc);
        goto out;
    }
    if ((rc = busd_subscription_next(pulled, WAIT_MS, &msg)) != BUSD_RESULT_OK) {
        report("busd_subscription_next", rc);
        goto out;
    }
    size_t len = 0;
    const uint8_t *payload = busd_message_payload(msg, &len);
    printf("next: %s \"%.*s\"\n", busd_message_subject(msg), (int)len, (const char *)payload);
    busd_message_free(msg);
    msg = NULL;
    rc = busd_subscription_next(pulled, 50, &msg);
    if (rc != BUSD_RESULT_TIMEOUT || msg != NULL) {
        fprintf(stderr, "expected a timeout, got %s\n", busd_strerror((int)rc));
        goto out;
    }
    printf("next again: %s\n", busd_strerror((int)rc));

    /* 3. Serve a service and call it. */
    if ((rc = busd_serve(client, "demo.upper", on_upper, NULL, &upper)) != BUSD_RESULT_OK) {
        report("busd_serve", rc);
        goto out;
    }
    const char *question = "round trip";
    rc = busd_request(client, "demo.upper", (const uint8_t *)question, strlen(question), WAIT_MS,
                      &response);
    if (rc != BUSD_RESULT_OK) {
        report("busd_request", rc);
        goto out;
    }
    payload = busd_response_payload(response, &len);
    printf("response: \"%.*s\" %s\n", (int)len, (const char *)payload,
           busd_response_status(response) == BUSD_STATUS_SUCCESS ? "success" : "failure");
    busd_response_free(response);
    response = NULL;

    /* 4. Nobody serves this one: the daemon says so at once. */
    rc = busd_request(client, "demo.nobody", NULL, 0, WAIT_MS, &response);
    if (rc != BUSD_RESULT_NO_RESPONDERS || response != NULL) {
        fprintf(stderr, "expected no responders, got %s\n", busd_strerror((int)rc));
        goto out;
    }
    printf("nobody: %s\n", busd_strerror((int)rc));
    printf("  why: %s\n", busd_last_error());

    failed = 0;
out:
    busd_response_free(response);
    busd_message_free(msg);
    busd_service_free(upper);
    busd_subscription_free(pulled);
    busd_subscription_free(greetings);
    busd_client_free(client);
    printf("%s\n", failed ? "failed" : "done");
    return failed;
}
