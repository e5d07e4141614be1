#!/bin/bash
# check_defaults.sh — the channel's defaults (logchannel/channel.h) are the numbers everybody
# states: `ftvm primary|backup --help`, the README and docs/channel-protocol.md. One set of FT
# defaults lives in the channel; this fails as soon as a text or the command line says another.
#
# Usage: check_defaults.sh SOURCE_DIR FTVM_BINARY. Prints every disagreement; exit 1 if any.
set -u
src=${1:?usage: check_defaults.sh SOURCE_DIR FTVM_BINARY}
ftvm=${2:?usage: check_defaults.sh SOURCE_DIR FTVM_BINARY}
bad=0

value() { # the number of `#define NAME 123u` in channel.h
	local v
	v=$(sed -n "s/^#define $1 \([0-9][0-9]*\)u\$/\1/p" "$src/logchannel/channel.h")
	if [ -z "$v" ]; then
		echo "channel.h: no numeric #define $1"
		bad=1
	fi
	echo "$v"
}

expect() { # expect WHAT FILE-OR-TEXT-LABEL TEXT FIXED-STRING
	if ! grep -qF -- "$4" <<<"$3"; then
		echo "$1: $2 does not say \"$4\""
		bad=1
	fi
}

hb=$(value CHANNEL_DEFAULT_HEARTBEAT_MS)
to=$(value CHANNEL_DEFAULT_TIMEOUT_MS)
conn=$(value CHANNEL_DEFAULT_CONNECT_MS)
hs=$(value CHANNEL_DEFAULT_HANDSHAKE_MS)
[ $bad -eq 0 ] || exit 1

for role in primary backup; do
	help=$("$ftvm" "$role" --help 2>&1)
	expect "ftvm $role --help" "--heartbeat" "$help" "--heartbeat MS      heartbeat interval (default $hb ms)"
	expect "ftvm $role --help" "--timeout" "$help" "peer silence that counts as failure (default $to ms)"
done

readme=$(tr '\n' ' ' <"$src/README.md" | tr -s ' ')
expect README.md "the heartbeat" "$readme" "heartbeats every \`--heartbeat\` ms (default $hb)"
expect README.md "the timeout" "$readme" "silence longer than \`--timeout\` ms (default $to)"

doc=$(tr '\n' ' ' <"$src/docs/channel-protocol.md" | tr -s ' ')
expect docs/channel-protocol.md "heartbeat_ms" "$doc" "\`heartbeat_ms\` (default $hb ms)"
expect docs/channel-protocol.md "timeout_ms" "$doc" "\`timeout_ms\` (default $to ms)"
expect docs/channel-protocol.md "the connect timeout" "$doc" "connect timeout (default $((conn / 1000)) s)"
expect docs/channel-protocol.md "handshake_timeout_ms" "$doc" "deadline of $((hs / 1000)) s (\`handshake_timeout_ms\`)"
expect docs/channel-protocol.md "the handshake deadline" "$doc" "gives each attempt $((hs / 1000)) s for TLS"

if [ $bad -eq 0 ]; then
	echo "defaults agree: heartbeat $hb ms, timeout $to ms, connect $conn ms, handshake $hs ms"
fi
exit $bad
