// The coordinator's live dashboard (GET /, docs/observability.md): one self-contained HTML page,
// inline CSS and JavaScript and no external asset, so it works offline and behind any firewall.
// It polls /status and /history, draws the curves as inline SVG and keeps what it has drawn
// while the coordinator is unreachable (a supervisor restart), reconnecting by itself.
#pragma once

#include <string_view>

namespace dptrain {

std::string_view dashboard_page();

}  // namespace dptrain
