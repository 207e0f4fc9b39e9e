// Everything of the wsl library.
#pragma once

#include "wsl/client.hpp"
#include "wsl/clock.hpp"
#include "wsl/deflate.hpp"
#include "wsl/error.hpp"
#include "wsl/extension.hpp"
#include "wsl/http.hpp"
#include "wsl/listener.hpp"
#include "wsl/options.hpp"
#include "wsl/peer_credentials.hpp"
#include "wsl/standard.hpp"
#include "wsl/tls.hpp"
#include "wsl/transport.hpp"
#include "wsl/websocket.hpp"
