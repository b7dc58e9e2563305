# shellcheck shell=bash
# The host side of a guest's link for scripts: tap0 (10.0.2.1/24, vnet
# header) in a private network namespace, with iperf3 and netserver
# listening there, as the guest's net-check expects.

# net_peer_up NS: creates namespace NS with the tap and the servers.
net_peer_up() {
	local ns=$1
	ip netns add "$ns"
	ip -n "$ns" link set lo up
	ip -n "$ns" tuntap add dev tap0 mode tap vnet_hdr
	ip -n "$ns" addr add 10.0.2.1/24 dev tap0
	ip -n "$ns" link set tap0 up
	ip netns exec "$ns" iperf3 -s -D
	ip netns exec "$ns" netserver -p 12865 >/dev/null 2>&1
}

# net_peer_down NS: ends every process in NS (deleting a namespace does not)
# and deletes it, with its tap.
net_peer_down() {
	local ns=$1
	ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null || true
	sleep 0.5
	ip netns del "$ns" 2>/dev/null || true
}
