// The control sockets of the tools (kipfw's for ipfw, tlem's session):
// a Unix stream socket in the runtime directory, made with mode 0600,
// answering only its own user and root (SO_PEERCRED), one request a
// connection. A request is one line; the answer is "0\n" + output, or
// "1 " + an error line.
#pragma once

#include <functional>
#include <string>

namespace unetmap::ctl {

// $UNETMAP_DIR/TOOL.NAME.sock (the runtime directory's default if unset).
std::string socket_path(const std::string& tool, const std::string& name);

// Listen on `path` (non-blocking): the socket, or -1 with *err. A socket
// file that still answers belongs to a running server: refused, *running
// set; one left by a server that died is replaced.
int listen_on(const std::string& path, std::string* err, bool* running = nullptr);

// Accept one connection on ls and answer it: handle(request line, &reply)
// fills the reply ("0\n..." or "1 ...\n"). A peer of another user is
// refused unread; a request must come whole within 200 ms (the tool's
// forwarding waits meanwhile).
void serve_one(int ls, const char* tool, const std::function<void(const std::string&, std::string*)>& handle);

// Send `line` (no newline in it) to the server at path and read its
// answer into *reply. false with *err (no server, a server of another
// user, no answer).
bool ask(const std::string& path, const std::string& line, std::string* reply, std::string* err);

}  // namespace unetmap::ctl
