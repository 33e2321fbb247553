// busd.hpp: a header-only C++17 wrapper over the C API (busd.h) with RAII
// handles and exceptions.
//
// Every handle owns its C handle and frees it in its destructor; handles move
// but do not copy. A failed call throws busd::Error, which carries the code
// and busd_last_error()'s message. Callbacks are std::function; they run on
// the library's threads (one per subscription or service, see busd.h), and
// an exception escaping one is caught there and dropped, since it must not
// unwind into C (for a service, the library then answers the caller
// Failure).
//
//   busd::Client client = busd::Client::connect("unix:///run/busd/busd.sock");
//   auto sub = client.subscribe("weather.>", [](const busd::Message &m) { ... });
//   client.publish("weather.today.paris", "sunny");
//   busd::Response r = client.request("contoso.echo", "hi");
#ifndef BUSD_HPP
#define BUSD_HPP

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

#include "busd.h"

namespace busd {

// A failed call: its code (busd_result) and the library's message.
class Error : public std::runtime_error {
public:
    Error(busd_result code, const std::string &message)
        : std::runtime_error(message), code_(code) {}
    busd_result code() const noexcept { return code_; }
    // The code's static description, e.g. "TIMEOUT: timed out".
    const char *describe() const noexcept { return busd_strerror(static_cast<int>(code_)); }

private:
    busd_result code_;
};

namespace detail {
inline void check(busd_result code, const char *what) {
    if (code != BUSD_RESULT_OK) {
        throw Error(code, std::string(what) + ": " + busd_last_error());
    }
}

inline const std::uint8_t *bytes(std::string_view s) {
    return reinterpret_cast<const std::uint8_t *>(s.data());
}

inline std::string_view view(const std::uint8_t *data, std::size_t len) {
    return {reinterpret_cast<const char *>(data), len};
}

inline std::optional<std::string_view> maybe(const char *s) {
    if (s == nullptr) {
        return std::nullopt;
    }
    return std::string_view(s);
}

template <typename T, void (*Free)(T *)>
struct Deleter {
    void operator()(T *p) const noexcept { Free(p); }
};

inline std::uint32_t millis(std::chrono::milliseconds timeout) {
    auto ms = timeout.count();
    if (ms < 0) {
        return 0;
    }
    return ms > UINT32_MAX ? UINT32_MAX : static_cast<std::uint32_t>(ms);
}
} // namespace detail

// A received message, borrowed: in a callback it is valid until the callback
// returns; from Subscription::next it lives as long as its OwnedMessage.
class Message {
public:
    explicit Message(const busd_message *msg) noexcept : msg_(msg) {}
    std::string_view subject() const noexcept { return busd_message_subject(msg_); }
    std::string_view payload() const noexcept {
        std::size_t len = 0;
        const std::uint8_t *data = busd_message_payload(msg_, &len);
        return detail::view(data, len);
    }
    // The publisher's proven package; empty for an unpackaged publisher.
    std::optional<std::string_view> sender_pfn() const noexcept {
        return detail::maybe(busd_message_sender_pfn(msg_));
    }
    std::uint64_t sender_id() const noexcept { return busd_message_sender_id(msg_); }
    std::optional<std::string_view> header(const char *name) const noexcept {
        return detail::maybe(busd_message_header(msg_, name));
    }

private:
    const busd_message *msg_;
};

// A message taken with Subscription::next: a Message that owns (and frees)
// what it views.
class OwnedMessage : public Message {
public:
    explicit OwnedMessage(busd_message *msg) noexcept : Message(msg), owned_(msg) {}

private:
    std::unique_ptr<busd_message, detail::Deleter<busd_message, busd_message_free>> owned_;
};

// A subscription; unsubscribes on destruction. With a callback, destruction
// waits for a callback in progress, so the handler never outlives it.
class Subscription {
public:
    using Handler = std::function<void(const Message &)>;

    // Waits up to `timeout` for the next message (pull subscriptions only);
    // nullopt on timeout. Throws on other failures. One thread at a time.
    std::optional<OwnedMessage> next(std::chrono::milliseconds timeout) {
        busd_message *msg = nullptr;
        busd_result code = busd_subscription_next(sub_.get(), detail::millis(timeout), &msg);
        if (code == BUSD_RESULT_TIMEOUT) {
            return std::nullopt;
        }
        detail::check(code, "busd_subscription_next");
        return OwnedMessage(msg);
    }

private:
    friend class Client;
    Subscription(busd_subscription *sub, std::unique_ptr<Handler> handler) noexcept
        : handler_(std::move(handler)), sub_(sub) {}

    static void trampoline(const busd_message *msg, void *user_data) noexcept {
        try {
            (*static_cast<Handler *>(user_data))(Message(msg));
        } catch (...) {
            // Must not unwind into C; the message is dropped.
        }
    }

    // Declared before sub_, so destroyed after it: the C handle (and its
    // thread) goes first, then the handler it calls.
    std::unique_ptr<Handler> handler_;
    std::unique_ptr<busd_subscription, detail::Deleter<busd_subscription, busd_subscription_free>>
        sub_;
};

// A request to a service this client serves, as its handler gets it.
class Call {
public:
    explicit Call(busd_call *call) noexcept : call_(call) {}
    std::string_view service() const noexcept { return busd_call_service(call_); }
    std::string_view payload() const noexcept {
        std::size_t len = 0;
        const std::uint8_t *data = busd_call_payload(call_, &len);
        return detail::view(data, len);
    }
    std::optional<std::string_view> sender_pfn() const noexcept {
        return detail::maybe(busd_call_sender_pfn(call_));
    }
    std::optional<std::string_view> header(const char *name) const noexcept {
        return detail::maybe(busd_call_header(call_, name));
    }
    // Answers Success with `payload`; once per call.
    void respond(std::string_view payload) {
        detail::check(busd_call_respond(call_, detail::bytes(payload), payload.size()),
                      "busd_call_respond");
    }
    // Answers Failure, `why` saying why; once per call.
    void fail(std::string_view why) {
        detail::check(busd_call_respond_failure(call_, detail::bytes(why), why.size()),
                      "busd_call_respond_failure");
    }

private:
    busd_call *call_;
};

// A registration as a responder; ends on destruction (after a handler in
// progress returns).
class Service {
public:
    using Handler = std::function<void(Call &)>;

private:
    friend class Client;
    Service(busd_service *service, std::unique_ptr<Handler> handler) noexcept
        : handler_(std::move(handler)), service_(service) {}

    static void trampoline(busd_call *call, void *user_data) noexcept {
        try {
            Call c(call);
            (*static_cast<Handler *>(user_data))(c);
        } catch (...) {
            // Must not unwind into C; an unanswered call is answered
            // Failure by the library.
        }
    }

    // Destroyed after service_, as in Subscription.
    std::unique_ptr<Handler> handler_;
    std::unique_ptr<busd_service, detail::Deleter<busd_service, busd_service_free>> service_;
};

// A service's answer, copied out of the C response.
struct Response {
    bool success;
    std::string payload;
};

// A connection to busd. Thread-safe: its methods may be called from many
// threads at once, callbacks included.
class Client {
public:
    // Where the busd command would connect: BUSD_URL, else the default socket.
    static Client connect_default() {
        busd_client *c = nullptr;
        detail::check(busd_connect_default(&c), "busd_connect_default");
        return Client(c);
    }
    static Client connect(const std::string &url) {
        busd_client *c = nullptr;
        detail::check(busd_connect(url.c_str(), &c), "busd_connect");
        return Client(c);
    }
    // As package `pfn`, proven by the token in `token_file`; an empty url
    // means the default endpoint.
    static Client connect_package(const std::string &url, const std::string &pfn,
                                  const std::string &token_file) {
        busd_client *c = nullptr;
        detail::check(busd_connect_package(url.empty() ? nullptr : url.c_str(), pfn.c_str(),
                                           token_file.c_str(), &c),
                      "busd_connect_package");
        return Client(c);
    }

    void publish(const std::string &subject, std::string_view payload) const {
        detail::check(busd_publish(client_.get(), subject.c_str(), detail::bytes(payload),
                                   payload.size()),
                      "busd_publish");
    }
    void publish(const std::string &subject, std::string_view payload,
                 const std::map<std::string, std::string> &headers) const {
        std::unique_ptr<busd_header[]> list(new busd_header[headers.size()]);
        std::size_t i = 0;
        for (const auto &[name, value] : headers) {
            list[i++] = busd_header{name.c_str(), value.c_str()};
        }
        detail::check(busd_publish_with_headers(client_.get(), subject.c_str(), list.get(),
                                                headers.size(), detail::bytes(payload),
                                                payload.size()),
                      "busd_publish_with_headers");
    }
    void flush() const { detail::check(busd_flush(client_.get()), "busd_flush"); }

    // A subscription whose messages are taken with next().
    Subscription subscribe(const std::string &subject) const {
        busd_subscription *sub = nullptr;
        detail::check(busd_subscribe(client_.get(), subject.c_str(), nullptr, &sub),
                      "busd_subscribe");
        return Subscription(sub, nullptr);
    }
    // A subscription calling `handler` on its own library thread.
    Subscription subscribe(const std::string &subject, Subscription::Handler handler) const {
        auto owned = std::make_unique<Subscription::Handler>(std::move(handler));
        busd_subscription *sub = nullptr;
        detail::check(busd_subscribe_callback(client_.get(), subject.c_str(), nullptr,
                                              &Subscription::trampoline, owned.get(), &sub),
                      "busd_subscribe_callback");
        return Subscription(sub, std::move(owned));
    }

    Service serve(const std::string &service, Service::Handler handler) const {
        auto owned = std::make_unique<Service::Handler>(std::move(handler));
        busd_service *s = nullptr;
        detail::check(busd_serve(client_.get(), service.c_str(), &Service::trampoline,
                                 owned.get(), &s),
                      "busd_serve");
        return Service(s, std::move(owned));
    }

    // Calls `service`; throws busd::Error for the daemon's verdicts
    // (BUSD_RESULT_NO_RESPONDERS, BUSD_RESULT_TIMEOUT, ...). A zero timeout
    // means the client's default (5 s).
    Response request(const std::string &service, std::string_view payload,
                     std::chrono::milliseconds timeout = std::chrono::milliseconds(0)) const {
        busd_response *r = nullptr;
        detail::check(busd_request(client_.get(), service.c_str(), detail::bytes(payload),
                                   payload.size(), detail::millis(timeout), &r),
                      "busd_request");
        std::unique_ptr<busd_response, detail::Deleter<busd_response, busd_response_free>> owned(r);
        std::size_t len = 0;
        const std::uint8_t *data = busd_response_payload(r, &len);
        return Response{busd_response_status(r) == BUSD_STATUS_SUCCESS,
                        std::string(detail::view(data, len))};
    }

private:
    explicit Client(busd_client *c) noexcept : client_(c) {}
    std::unique_ptr<busd_client, detail::Deleter<busd_client, busd_client_free>> client_;
};

} // namespace busd

#endif // BUSD_HPP
