package e2e

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

// userNetScript proves --net user as an unprivileged user would run it.
// L1 plays the host: a name server on all its addresses, HTTP servers on
// its loopback and on a second address (192.0.2.1, reached through the
// NAT as any host on the user's network would be), a user in the kvm
// group and nothing more. $1 is the kernel, $D the scratch directory.
const userNetScript = `
set -u
K=$1
U=$D/user
mkdir -p $D/www $U
head -c 67108864 /dev/urandom > $D/www/blob
head -c 67108864 /dev/urandom > $D/up
head -c 16777216 /dev/urandom > $D/sw
echo fwd-ok > $D/www/fwd.txt
chmod +x $D/udhcpc.sh
echo "NET sums blob=$(govm-host sum $D/www/blob) up=$(govm-host sum $D/up) sw=$(govm-host sum $D/sw) fwd=$(govm-host sum $D/www/fwd.txt)"
ip link set lo up
ip addr add 192.0.2.1/32 dev lo
echo 'nameserver 127.0.0.1' > /etc/resolv.conf
govm-host dns 0.0.0.0:53 test.govm.example=10.0.2.2 other.govm.example=192.0.2.1 & servers=$!
govm-host http 127.0.0.1:8000 $D/www & servers="$servers $!"
govm-host http 192.0.2.1:8001 $D/www & servers="$servers $!"
` + execRetry + `
# 1. The guest's stock DHCP client (busybox udhcpc) gets the address;
#    root in L1 so the command is root in the guest (udhcpc needs it).
retry dhcp govm exec --kernel $K --timeout 150s --console-log $D/dhcp.console --net user -- sh $D/dhcp.sh >$D/dhcp.out 2>$D/dhcp.err
echo "NET dhcp rc=$?"
sed 's/^/NET dhcp /' $D/dhcp.out
sed 's/^/NET dhcp-err /' $D/dhcp.err
# 2. Everything else as a user in the kvm group and nothing more.
grep -q '^root:' /etc/passwd 2>/dev/null || echo 'root:x:0:0::/root:/bin/sh' >> /etc/passwd
echo "tester:x:1234:1234::$U:/bin/sh" >> /etc/passwd
echo 'tester:x:1234:' >> /etc/group
echo 'kvm:x:990:tester' >> /etc/group
chgrp 990 /dev/kvm && chmod 0660 /dev/kvm
chmod 0666 /dev/net/tun # as distributions ship it
chown 1234:1234 $U
as() { su tester -c "cd $U && $*"; }
# A TAP is the one thing that needs privilege, and govm says which.
as "govm run --kernel $K --net tap=t9 --timeout 5s" >$D/tap.out 2>&1
echo "NET tap rc=$? $(head -1 $D/tap.out)"
echo "NET user $(as id | tr ' ' '\n' | grep -c kvm) caps=$(as 'grep CapEff /proc/self/status' | tr -d '\t')"
# Each attempt has its own host client: it reaches the guest's server
# through the forward while the guest waits for that one request, then
# says what is bound on 8080.
hostfwd() {
	for i in 1 2 3 4 5 6 7; do out=$(govm-host get http://127.0.0.1:8080/fwd.txt) && break; done
	if [ -n "$out" ]; then
		echo "NET hostfwd $out listen=$(awk '$2 ~ /:1F90$/ && $4 == "0A" {print $2}' /proc/net/tcp)"
		for p in /proc/[0-9]*; do [ "$(cat $p/comm 2>/dev/null)" = govm-net ] && echo "NET helper $(grep VmHWM $p/status | tr -s ' \t' ' ') uid=$(awk '/^Uid/ {print $2}' $p/status)"; done
	fi
}
userrun() {
	hostfwd & fwd=$!
	as "govm exec --kernel $K --timeout 400s --console-log $D/main.console --net user,hostfwd=tcp::8080-:80 -- sh $D/guest.sh" >$D/main.out 2>$D/main.err
	rc=$?
	kill $fwd 2>/dev/null; wait $fwd
	return $rc
}
retry main userrun
echo "NET main rc=$?"
sed 's/^/NET main /' $D/main.out
sed 's/^/NET main-err /' $D/main.err
# 3. Two VMs on one switch: each pings the other, B sends A 16 MiB. A
#    starts the switch; B joins once its socket is there. The pair is
#    run again only on the emulator's evidence in either (as retry does).
swrun() {
	as "govm exec --kernel $K --timeout 200s --console-log $D/sw$1.console --net user,switch=$U/lab.sock -- sh -c '$2'" >$D/sw$1.out 2>$D/sw$1.err
}
for attempt in 1 2 3; do
	swrun A 'govm-host ping 10.0.2.16 && govm-host recv 7000 /tmp/s && echo recv=$(cat /tmp/s)' &
	a=$!
	for i in $(seq 100); do [ -S $U/lab.sock ] && break; sleep 0.1; done
	swrun B "govm-host ping 10.0.2.15 && govm-host put 10.0.2.15:7000 $D/sw && echo sent" &
	b=$!
	wait $a; ra=$?; wait $b; rb=$?
	ev="$(evidence swA $ra)$(evidence swB $rb)"
	[ -n "$ev" ] && { echo "EXEC-RETRY switch attempt=$attempt rc=$ra,$rb evidence=$ev"; continue; }
	break
done
echo "NET swA rc=$ra"; echo "NET swB rc=$rb"
sed 's/^/NET swA /' $D/swA.out; sed 's/^/NET swB /' $D/swB.out
sed 's/^/NET swA-err /' $D/swA.err; sed 's/^/NET swB-err /' $D/swB.err
[ -e $U/lab.sock ] && echo "NET switch socket left" || echo "NET switch socket gone"
ps | grep -c '[g]ovm-net' | sed 's/^/NET helpers left /'
kill $servers
exit 0
`

// dhcpScript runs in the guest as root: it drops the address govm's init
// gave eth0 and asks DHCP for one.
const dhcpScript = `
ip addr flush dev eth0
udhcpc -i eth0 -n -q -f -t 5 -T 1 -O mtu -s $D/udhcpc.sh
cat /tmp/lease
echo "addr $(ip -4 -o addr show dev eth0 | awk '{print $4}')"
`

// udhcpcScript is udhcpc's event script.
const udhcpcScript = `#!/bin/sh
case $1 in
bound|renew)
	ip addr add $ip/$mask dev $interface
	echo "lease ip=$ip mask=$mask router=$router dns=$dns mtu=${mtu:-none}" > /tmp/lease ;;
esac
`

// guestScript runs in the guest as the unprivileged user.
const guestScript = `
echo "addr=$(ip -4 -o addr show dev eth0 | awk '{print $4}') mtu=$(cat /sys/class/net/eth0/mtu) uid=$(id -u)"
echo "resolve $(nslookup test.govm.example 2>&1 | grep -A1 '^Name:' | grep -o 'Address: [0-9.]*')"
echo "udp-nat $(nslookup other.govm.example 192.0.2.1 2>&1 | grep -A1 '^Name:' | grep -o 'Address: [0-9.]*')"
t0=$(date +%s)
echo "get $(govm-host get http://test.govm.example:8000/blob)"
t1=$(date +%s)
echo "post $(govm-host post http://test.govm.example:8000/up $D/up)"
echo "seconds get=$((t1 - t0)) post=$(($(date +%s) - t1))"
echo "tcp-nat $(govm-host get http://192.0.2.1:8001/fwd.txt)"
echo "stdin $(echo via-stdin | govm-host sum /dev/stdin) $(echo via-stdin > /tmp/v && govm-host sum /tmp/v)"
govm-host http :80 $D/www 1 && echo served
`

// TestUserNet runs govm exec with --net user as a user who may open
// /dev/kvm and nothing else: the guest's DHCP client gets the address,
// names resolve through the host's resolver, 64 MiB go each way over
// HTTP between the guest and the host's loopback (hashes checked), TCP
// and UDP reach another host address through the NAT, a host client
// reaches a guest server through hostfwd (bound on 127.0.0.1 alone), and
// two VMs on one switch ping each other and move 16 MiB; the switch's
// socket and helpers are gone afterwards. All traffic stays inside L1.
func TestUserNet(t *testing.T) {
	r := testRunner(t)
	if r.Mode != Nested {
		t.Skip("nested only: the test sets L1's resolver, adds an address and a user")
	}
	c := Case{
		Program: "sh", Args: []string{"{dir}/usernet.sh", "{bzImage}"}, Timeout: 20 * time.Minute,
		Files: map[string][]byte{
			"usernet.sh": []byte(userNetScript), "dhcp.sh": []byte(dhcpScript),
			"udhcpc.sh": []byte(udhcpcScript), "guest.sh": []byte(guestScript),
		},
		Env: []string{"D={dir}"},
	}
	withGuestModules(t, r, &c)
	res := runCase(t, r, c, 0)
	out := res.Output
	if retries := regexp.MustCompile(`(?m)^EXEC-RETRY .*$`).FindAllString(out, -1); len(retries) > 0 {
		t.Logf("%d runs retried on the nested emulator's evidence:\n%s", len(retries), strings.Join(retries, "\n"))
	}
	sums := regexp.MustCompile(`NET sums blob=(\S+) up=(\S+) sw=(\S+) fwd=(\S+)`).FindStringSubmatch(out)
	if sums == nil {
		t.Fatalf("no sums:\n%s", out)
	}
	for _, want := range []string{
		"NET dhcp rc=0",
		"NET dhcp lease ip=10.0.2.15 mask=24 router=10.0.2.2 dns=10.0.2.3 mtu=65520",
		"NET dhcp addr 10.0.2.15/24",
		"NET user 1 caps=CapEff:0000000000000000",
		"NET tap rc=1 govm: --net: t9: creating it not permitted: needs CAP_NET_ADMIN, or one made for you once by root: ip tuntap add t9 mode tap user tester; or --net user, which needs no privilege",
		"NET main rc=0",
		"NET main addr=10.0.2.15/24 mtu=65520 uid=1234",
		"NET main resolve Address: 10.0.2.2",
		"NET main udp-nat Address: 192.0.2.1",
		"NET main get 67108864 " + sums[1],
		"NET main post 67108864 " + sums[2],
		"NET main tcp-nat 7 " + sums[4],
		"NET main served",
		"NET hostfwd 7 " + sums[4] + " listen=0100007F:1F90",
		"NET swA rc=0", "NET swB rc=0",
		"NET swA recv=" + sums[3],
		"NET swB sent",
		"NET switch socket gone",
		"NET helpers left 0",
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("missing %q", want)
		}
	}
	if m := regexp.MustCompile(`NET main stdin (\S+) (\S+)`).FindStringSubmatch(out); m == nil || m[1] != m[2] {
		t.Errorf("/dev/stdin in the guest: %q", m)
	}
	if m := regexp.MustCompile(`NET main seconds get=(\d+) post=(\d+)`).FindStringSubmatch(out); m != nil {
		t.Logf("64 MiB host to guest in %s s, guest to host in %s s (nested)", m[1], m[2])
	}
	if m := regexp.MustCompile(`NET helper VmHWM: (\d+) kB uid=(\d+)`).FindStringSubmatch(out); m != nil {
		t.Logf("govm-net peak resident %s kB (uid %s) after 128 MiB through the NAT", m[1], m[2])
	}
	if t.Failed() {
		t.Logf("output:\n%s", out)
	}
}
