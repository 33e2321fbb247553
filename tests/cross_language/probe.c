/*
 * The C side of tests/cross_language: one busd client, connected as a
 * package proven by its token, doing one thing that argv names.
 *
 * Usage:
 *   probe URL PFN TOKEN_FILE req SERVICE PAYLOAD
 *       prints the service's answer and a newline
 *   probe URL PFN TOKEN_FILE sub SUBJECT COUNT TIMEOUT_MS
 *       prints "ready" once the daemon has the subscription, then
 *       "SENDER_PFN<TAB>PAYLOAD" for each of COUNT messages, each waited
 *       for at most TIMEOUT_MS ("unpackaged" for an unpackaged sender)
 *   probe URL PFN TOKEN_FILE pub SUBJECT PAYLOAD
 *       publishes, and returns once the daemon has routed the message
 *
 * Exit status: 0, or the busd_result of the call that failed (its
 * busd_strerror and busd_last_error on stderr), so the test can tell
 * NOT_AUTHORIZED from TIMEOUT; 64 for a usage error (no busd_result has
 * that value). A service's Failure answer exits BUSD_RESULT_SERVICE_FAILURE.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "busd.h"

#define EXIT_USAGE 64

/* Reports a failed call on stderr; its result, as the exit status. */
static int fail(const char *what, busd_result result) {
    /* busd_last_error is valid only until the next busd call (busd_strerror
     * is one): printed before it, not beside it in one argument list. */
    fprintf(stderr, "probe: %s: %s", what, busd_last_error());
    fprintf(stderr, " (%s)\n", busd_strerror(result));
    return (int)result;
}

static int usage(void) {
    fprintf(stderr,
            "usage: probe URL PFN TOKEN_FILE req SERVICE PAYLOAD\n"
            "       probe URL PFN TOKEN_FILE sub SUBJECT COUNT TIMEOUT_MS\n"
            "       probe URL PFN TOKEN_FILE pub SUBJECT PAYLOAD\n");
    return EXIT_USAGE;
}

/* A non-negative decimal that fits `max`, or -1. */
static long parse_count(const char *text, long max) {
    char *end = NULL;
    errno = 0;
    long value = strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || value < 0 || value > max) {
        return -1;
    }
    return value;
}

static int request(const busd_client *client, const char *service, const char *payload) {
    busd_response *response = NULL;
    busd_result r = busd_request(client, service, (const uint8_t *)payload, strlen(payload),
                                 10000, &response);
    if (r != BUSD_RESULT_OK) {
        return fail("request", r);
    }
    size_t len = 0;
    const uint8_t *answer = busd_response_payload(response, &len);
    int status = 0;
    if (busd_response_status(response) == BUSD_STATUS_SUCCESS) {
        fwrite(answer, 1, len, stdout);
        fputc('\n', stdout);
    } else {
        fprintf(stderr, "probe: request: the service failed: %.*s\n", (int)len,
                (const char *)answer);
        status = BUSD_RESULT_SERVICE_FAILURE;
    }
    busd_response_free(response);
    return status;
}

static int subscribe(const busd_client *client, const char *subject, long count,
                     long timeout_ms) {
    busd_subscription *sub = NULL;
    busd_result r = busd_subscribe(client, subject, NULL, &sub);
    if (r != BUSD_RESULT_OK) {
        return fail("subscribe", r);
    }
    /* busd_subscribe returned: the daemon has the subscription, and a
     * message published from now on reaches it. The test waits for this
     * line before it publishes; flushed, as stdout is a pipe. */
    printf("ready\n");
    fflush(stdout);
    int status = 0;
    for (long i = 0; i < count; i++) {
        busd_message *msg = NULL;
        r = busd_subscription_next(sub, (uint32_t)timeout_ms, &msg);
        if (r != BUSD_RESULT_OK) {
            status = fail("next message", r);
            break;
        }
        size_t len = 0;
        const uint8_t *payload = busd_message_payload(msg, &len);
        const char *pfn = busd_message_sender_pfn(msg);
        printf("%s\t", pfn != NULL ? pfn : "unpackaged");
        fwrite(payload, 1, len, stdout);
        fputc('\n', stdout);
        fflush(stdout);
        busd_message_free(msg);
    }
    busd_subscription_free(sub);
    return status;
}

static int publish(const busd_client *client, const char *subject, const char *payload) {
    busd_result r = busd_publish(client, subject, (const uint8_t *)payload, strlen(payload));
    if (r != BUSD_RESULT_OK) {
        return fail("publish", r);
    }
    /* A publish is only queued; the test relies on the daemon having
     * routed it (to order it after what others published before) by the
     * time this program exits. */
    r = busd_flush(client);
    if (r != BUSD_RESULT_OK) {
        return fail("flush", r);
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 5) {
        return usage();
    }
    const char *url = argv[1], *pfn = argv[2], *token_file = argv[3], *mode = argv[4];
    long count = 0, timeout_ms = 0;
    if (strcmp(mode, "sub") == 0) {
        if (argc != 8) {
            return usage();
        }
        count = parse_count(argv[6], 1000000);
        timeout_ms = parse_count(argv[7], 600000);
        if (count < 0 || timeout_ms < 0) {
            return usage();
        }
    } else if ((strcmp(mode, "req") != 0 && strcmp(mode, "pub") != 0) || argc != 7) {
        return usage();
    }

    busd_client *client = NULL;
    busd_result r = busd_connect_package(url, pfn, token_file, &client);
    if (r != BUSD_RESULT_OK) {
        return fail("connect", r);
    }
    int status;
    if (strcmp(mode, "req") == 0) {
        status = request(client, argv[5], argv[6]);
    } else if (strcmp(mode, "sub") == 0) {
        status = subscribe(client, argv[5], count, timeout_ms);
    } else {
        status = publish(client, argv[5], argv[6]);
    }
    busd_client_free(client);
    return status;
}
