#!/bin/sh
# Starts the lab DNS hierarchy of examples/dns on 127.0.0.1-3, port 5300 (or $1), until Ctrl-C.
#   sh examples/lab-dns.sh
#   dns query www.example.test --trace --root-hints examples/dns/root.hints --port 5300
set -eu
port=${1:-5300}
dir=$(dirname "$0")/dns
pids=""
trap 'kill $pids 2>/dev/null' EXIT INT TERM
dns zone --listen 127.0.0.1:"$port" --zone "$dir/root.zone" & pids="$pids $!"
dns zone --listen 127.0.0.2:"$port" --zone "$dir/test.zone" & pids="$pids $!"
dns zone --listen 127.0.0.3:"$port" --zone "$dir/example.test.zone" & pids="$pids $!"
wait
