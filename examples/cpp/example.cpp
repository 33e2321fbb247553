// busd from C++ through busd.hpp: the same steps as examples/c/example.c,
// with RAII handles and exceptions.
//
// Usage: example [URL]   (no URL: BUSD_URL, else the default socket)
//
/* Build (from the repository root, after `cargo build -p busd-capi`):
 *   c++ -std=c++17 -Wall -Wextra -I crates/busd-capi/include -I examples/cpp \
 *       examples/cpp/example.cpp -L target/debug -lbusd_capi \
 *       -Wl,-rpath,target/debug -o example
 */
#include <algorithm>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <iostream>
#include <mutex>
#include <string>

#include "busd.hpp"

using namespace std::chrono_literals;

int main(int argc, char **argv) try {
    busd::Client client =
        argc >= 2 ? busd::Client::connect(argv[1]) : busd::Client::connect_default();
    std::cout << "connected" << std::endl;

    // A callback subscription: the lambda runs on the subscription's thread.
    std::mutex lock;
    std::condition_variable changed;
    int received = 0;
    busd::Subscription greetings =
        client.subscribe("demo.greetings.>", [&](const busd::Message &msg) {
            auto lang = msg.header("lang");
            std::cout << "callback: " << msg.subject() << " \"" << msg.payload() << "\" lang="
                      << lang.value_or("-") << std::endl;
            std::lock_guard<std::mutex> guard(lock);
            ++received;
            changed.notify_one();
        });
    client.publish("demo.greetings.cpp", "hello from C++", {{"lang", "c++"}});
    {
        std::unique_lock<std::mutex> guard(lock);
        if (!changed.wait_for(guard, 10s, [&] { return received >= 1; })) {
            std::cerr << "the callback never got the greeting" << std::endl;
            return 1;
        }
    }

    // A subscription read by waiting.
    busd::Subscription pulled = client.subscribe("demo.pull");
    client.publish("demo.pull", "pulled");
    auto msg = pulled.next(10s);
    if (!msg) {
        std::cerr << "no message on demo.pull" << std::endl;
        return 1;
    }
    std::cout << "next: " << msg->subject() << " \"" << msg->payload() << "\"" << std::endl;
    if (pulled.next(50ms)) {
        std::cerr << "a second message on demo.pull" << std::endl;
        return 1;
    }

    // Serve and call; the handler answers in upper case, or fails.
    busd::Service upper = client.serve("demo.upper", [](busd::Call &call) {
        std::string text(call.payload());
        if (text.empty()) {
            call.fail("nothing to shout");
            return;
        }
        std::transform(text.begin(), text.end(), text.begin(),
                       [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
        call.respond(text);
    });
    busd::Response answer = client.request("demo.upper", "round trip", 10s);
    std::cout << "response: \"" << answer.payload << "\" "
              << (answer.success ? "success" : "failure") << std::endl;
    busd::Response refused = client.request("demo.upper", "", 10s);
    std::cout << "empty: \"" << refused.payload << "\" "
              << (refused.success ? "success" : "failure") << std::endl;

    try {
        client.request("demo.nobody", "", 10s);
        std::cerr << "demo.nobody answered" << std::endl;
        return 1;
    } catch (const busd::Error &e) {
        std::cout << "nobody: " << e.describe() << std::endl;
    }
    std::cout << "done" << std::endl;
    return 0;
} catch (const busd::Error &e) {
    std::cerr << "busd error: " << e.describe() << ": " << e.what() << std::endl;
    return 1;
}
