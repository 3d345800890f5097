//! The offload cases of the conformance suite (issue 16): chained packets, jumbo frames,
//! checksum, VLAN and segmentation offloads, run in the same lab boot as the other cases (they
//! add a few guest runs, no boot). The guest side is `offload-guest` (crates/burst/src/bin) and
//! `l2fwd`; the host builds and checks frames with `etherparse`, not with the code under test.
//!
//! The cases know no driver: each asks the port for an offload and judges what crosses the
//! wire. What QEMU's model of a NIC cannot show is said by [`limit`], and a case that meets such
//! a limit passes only by finding exactly that (a refused offload, checksums left unknown) and
//! says so in its row; a model that shows less than [`limit`] admits fails.
//!
//! Which models run them is [`runs_on`]: every model with a burst driver (e1000 and virtio-net).
//! [`limit`] has a line per feature a QEMU model cannot show: QEMU's `-netdev dgram` wire carries
//! no virtio-net header, so QEMU offers neither `CSUM` nor `GUEST_CSUM` nor TSO there, and
//! virtio-net has no VLAN strip or insert, so for the virtio models `Feature::TxCsum`, `RxCsum`,
//! `Tso` and `Vlan` are `Limit::Refused`: `offload-guest` exits 3 when the port refuses an
//! offload, and the case's row then says why it was not shown.

use std::time::{Duration, Instant};

use burst_lab::frames::TestFrame;
use burst_lab::NicModel;
use etherparse::{Ipv4HeaderSlice, PacketBuilder, TcpHeader, UdpHeader};
use serde_json::Value;

use super::cases::{CaseFn, Ctx, END_SEQ, HOST_MAC, OTHER_MAC};
use super::GUEST_TIMEOUT;

/// The offload cases, in the order they run.
const CASES: [(&str, CaseFn); 6] = [
    ("jumbo-fwd", jumbo_fwd),
    ("scatter", scatter),
    ("tx-csum", tx_csum),
    ("rx-csum", rx_csum),
    ("vlan", vlan),
    ("tso", tso),
];

/// The offload cases for `nic` (none for a model [`runs_on`] leaves out).
pub(super) fn cases(nic: NicModel) -> &'static [(&'static str, CaseFn)] {
    if runs_on(nic) {
        &CASES
    } else {
        &[]
    }
}

/// Whether the offload cases run on `nic`: the e1000 models. virtio-net's mergeable buffers and
/// offloads are not on this branch (see the module's documentation to add them).
pub(super) fn runs_on(nic: NicModel) -> bool {
    matches!(
        nic,
        NicModel::E1000
            | NicModel::E1000_82545em
            | NicModel::E1000_82544gc
            | NicModel::VirtioLegacy
            | NicModel::VirtioModern
    )
}

/// A feature a case proves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Feature {
    Scatter,
    TxCsum,
    RxCsum,
    Vlan,
    Tso,
}

/// What QEMU's model of a NIC cannot show, and how that looks from the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Limit {
    /// The device does not offer the feature: the port refuses it at configure (the virtio-net
    /// models, for checksums, TSO and VLAN: see the module's documentation).
    Refused(&'static str),
    /// The device takes the request but checks nothing: every RX checksum verdict is unknown.
    Unchecked(&'static str),
}

/// Why QEMU's model of `nic` cannot show `feature`, or `None` when it must.
pub(super) fn limit(nic: NicModel, feature: Feature) -> Option<Limit> {
    match (nic, feature) {
        // hw/net/e1000.c writes IXSM ("ignore checksum indication", SDM 3.2.3.1) into every
        // frame's last descriptor: the 8254x models check no received checksum.
        (NicModel::E1000 | NicModel::E1000_82545em | NicModel::E1000_82544gc, Feature::RxCsum) => {
            Some(Limit::Unchecked("QEMU's 8254x model sets IXSM on every frame: it checks no received checksum"))
        }
        (NicModel::VirtioLegacy | NicModel::VirtioModern, Feature::TxCsum | Feature::RxCsum | Feature::Tso) => {
            Some(Limit::Refused(
                "QEMU's -netdev dgram wire has no virtio-net header, so QEMU offers no CSUM, GUEST_CSUM or HOST_TSO",
            ))
        }
        (NicModel::VirtioLegacy | NicModel::VirtioModern, Feature::Vlan) => {
            Some(Limit::Refused("virtio-net has no VLAN strip or insert (VIRTIO_NET_F_CTRL_VLAN only filters)"))
        }
        _ => None,
    }
}

/// The row of a case whose offload the port refused: a pass only where [`limit`] says the
/// model's device does not offer it.
fn refused(c: &Ctx, feature: Feature, why: &str) -> Result<(u64, String), String> {
    match limit(c.nic, feature) {
        Some(Limit::Refused(because)) => Ok((0, format!("not shown: {because}; the port refused it: {why}"))),
        _ => Err(format!("{} refused it: {why}", c.nic)),
    }
}

/// Exit status of `offload-guest` when the port refused an offload.
const REFUSED: i32 = 3;
/// The largest frame of the jumbo cases (CRC included): an MTU of 9000.
const JUMBO_PKT_LEN: &str = "9018";

/// Runs `offload-guest` with `app` on NIC 0.
fn spawn<'a>(c: &'a Ctx, app: &[&'a str]) -> Result<burst_lab::Process<'a>, String> {
    c.lab.spawn(&c.argv("offload-guest", &[0], "0", app)).map_err(|e| format!("spawning offload-guest: {e}"))
}

/// A guest program whose port runs, or why its port refused the offloads asked for.
type Started<'a> = Result<burst_lab::Process<'a>, String>;

/// `offload-guest` with `app`, once its port runs (it prints `ready`); `Ok(Err(why))` when the
/// port refused the offloads asked for (for [`refused`] to judge).
fn start<'a>(c: &'a Ctx, app: &[&'a str]) -> Result<Started<'a>, String> {
    let mut p = spawn(c, app)?;
    let Err(e) = p.wait_for_stdout("ready", GUEST_TIMEOUT) else { return Ok(Ok(p)) };
    let never = format!("offload-guest {} never got ready: {e}", app[0]);
    let out = p.wait(Duration::from_secs(5)).map_err(|_| never.clone())?;
    if out.status != burst_lab::ExitStatus::Code(REFUSED) {
        return Err(never);
    }
    let err = out.stderr_str();
    let why = err.lines().find_map(|l| l.strip_prefix("offload-guest: refused: ")).unwrap_or(&err);
    Ok(Err(why.trim().to_string()))
}

/// The result of a run that got ready: it must end well.
fn done(c: &Ctx, what: &str, app: burst_lab::Process<'_>) -> Result<Value, String> {
    let out = app.wait(GUEST_TIMEOUT).map_err(|e| format!("{what}: {e}"))?;
    c.guest_result(what, &out)
}

/// Sends `frames` then the end frame on wire 0, and returns what `recv` reported.
fn recv_frames(c: &Ctx, app: burst_lab::Process<'_>, frames: &[Vec<u8>]) -> Result<(Value, Vec<Vec<u64>>), String> {
    c.send_paced(0, frames.iter().cloned())?;
    c.lab.wire(0).send(&TestFrame::build(c.mac(0), HOST_MAC, END_SEQ, 60)).map_err(|e| e.to_string())?;
    let v = done(c, "offload-guest recv", app)?;
    let got = v["frames"]
        .as_array()
        .ok_or(format!("no frames in {v}"))?
        .iter()
        .map(|f| f.as_array().map(|a| a.iter().map(|x| x.as_u64().unwrap_or(u64::MAX)).collect()).unwrap_or_default())
        .collect();
    Ok((v, got))
}

fn fnv1a(bytes: &[u8]) -> u64 {
    u64::from(bytes.iter().fold(0x811c_9dc5u32, |h, &b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193)))
}

/// Frames on wire `i` until `n` of those `keep` accepts arrived (others are skipped), or the time
/// is up.
fn collect(c: &Ctx, i: usize, n: usize, keep: impl Fn(&[u8]) -> bool) -> Result<Vec<Vec<u8>>, String> {
    let deadline = Instant::now() + GUEST_TIMEOUT;
    let mut got = Vec::new();
    while got.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        match c.lab.wire(i).recv(left).map_err(|e| e.to_string())? {
            Some(f) if keep(&f) => got.push(f),
            Some(_) => {}
            None => break,
        }
    }
    Ok(got)
}

/// jumbo-fwd: l2fwd with `--max-pkt-len 9018` on its default 2 KiB buffers (so with scatter and
/// multi-segment TX) forwards 9014-byte frames (9018 with CRC) and smaller ones both ways,
/// byte-exact but for the addresses it rewrites.
fn jumbo_fwd(c: &Ctx) -> Result<(u64, String), String> {
    const SIZES: [usize; 5] = [9014, 60, 2049, 4096, 9014];
    for i in 0..2 {
        c.lab.wire(i).drain().map_err(|e| e.to_string())?;
    }
    let argv = c.argv("l2fwd", &[0, 1], "0,1", &["-p", "3", "-T", "0", "--max-pkt-len", JUMBO_PKT_LEN]);
    let mut app = c.lab.spawn(&argv).map_err(|e| e.to_string())?;
    for port in ["portid=0", "portid=1"] {
        app.wait_for_stdout(port, GUEST_TIMEOUT).map_err(|e| format!("l2fwd never polled ({port}): {e}"))?;
    }
    let mut problem = None;
    for (from, to) in [(0usize, 1usize), (1, 0)] {
        let sent: Vec<Vec<u8>> =
            SIZES.iter().enumerate().map(|(k, &len)| TestFrame::build(c.mac(from), HOST_MAC, k as u32, len)).collect();
        c.send_paced(from, sent.iter().cloned())?;
        let got = collect(c, to, sent.len(), |f| f.len() >= 24 && f[12..14] == [0x88, 0xb5])?;
        let want_addrs = [[0x02, 0, 0, 0, 0, to as u8], c.mac(to)].concat();
        for (k, s) in sent.iter().enumerate() {
            let Some(f) = got.get(k) else {
                problem = Some(format!("wire {from} -> {to}: {} of {} frames came through", got.len(), sent.len()));
                break;
            };
            if f[..12] != want_addrs[..] || f[12..] != s[12..] {
                problem = Some(format!(
                    "wire {from} -> {to}: frame {k} ({} bytes sent) came out as {} bytes, not the same",
                    s.len(),
                    f.len()
                ));
                break;
            }
        }
        if problem.is_some() {
            break;
        }
    }
    app.signal(libc::SIGINT).map_err(|e| e.to_string())?;
    let out = app.wait(GUEST_TIMEOUT).map_err(|e| e.to_string())?;
    c.check_exit("l2fwd --max-pkt-len", &out)?;
    if let Some(e) = problem {
        return Err(e);
    }
    let pool = out.stdout_str().lines().find(|l| l.starts_with("mbuf pool:")).map(str::to_string);
    let pool = pool.ok_or("l2fwd printed no pool line")?;
    let words: Vec<&str> = pool.split_whitespace().collect();
    if words.len() < 5 || words[2] != words[4] {
        let err = format!("l2fwd --max-pkt-len: {pool}");
        c.leaks.borrow_mut().push(err.clone());
        return Err(err);
    }
    Ok((2 * SIZES.len() as u64, format!("{SIZES:?} each way on 2 KiB buffers, byte-exact; {pool}")))
}

/// The longest frame (CRC included) the scatter case asks `nic` to take: the 8254x's 16128
/// (SDM 8.2.5.3, long packet enable; MTU 16110); virtio-net's driver offers an MTU up to 9706
/// (its largest mergeable frame), of which the case uses 9000.
fn scatter_max_pkt_len(nic: NicModel) -> usize {
    if nic.is_virtio() {
        9018
    } else {
        16128
    }
}

/// The segments a `len`-byte frame fills with 1 KiB buffers: 1024 bytes each on the 8254x;
/// virtio-net's driver posts each mergeable buffer with the 12 bytes in front of its data for
/// the net header, which only the first buffer needs, so later ones take 1036 bytes.
fn scatter_segments(nic: NicModel, len: usize) -> usize {
    if nic.is_virtio() && len > 1024 {
        1 + (len - 1024).div_ceil(1036)
    } else {
        len.div_ceil(1024)
    }
}

/// scatter: with 1 KiB buffers and the largest MTU the model takes (16110 on the 8254x, 16128-byte
/// frames with CRC; 9000 on virtio-net), frames of every size up to that arrive as chains of the
/// segments the buffers make ([`scatter_segments`]) holding exactly the bytes sent.
fn scatter(c: &Ctx) -> Result<(u64, String), String> {
    const SIZES: [usize; 9] = [60, 1024, 1025, 1514, 3000, 7200, 8192, 9014, 16124];
    let max = scatter_max_pkt_len(c.nic);
    let max_arg = max.to_string();
    let app = match start(c, &["recv", "--rx-offloads", "scatter", "--data-room", "1024", "--max-pkt-len", &max_arg])? {
        Ok(app) => app,
        Err(why) => return refused(c, Feature::Scatter, &why),
    };
    let sizes: Vec<usize> = SIZES.into_iter().filter(|&len| len + 4 <= max).collect();
    let sent: Vec<Vec<u8>> =
        sizes.iter().enumerate().map(|(k, &len)| TestFrame::build(c.mac(0), HOST_MAC, k as u32, len)).collect();
    let (v, got) = recv_frames(c, app, &sent)?;
    if got.len() != sent.len() {
        return Err(format!("{} of {} frames arrived: {}", got.len(), sent.len(), v["stats"]));
    }
    for (s, g) in sent.iter().zip(&got) {
        let want = [s.len() as u64, scatter_segments(c.nic, s.len()) as u64];
        if g[..2] != want || g[6] != fnv1a(s) {
            return Err(format!(
                "a {}-byte frame arrived as {} bytes in {} segments (want {}), {}",
                s.len(),
                g[0],
                g[1],
                want[1],
                if g[6] == fnv1a(s) { "intact" } else { "damaged" }
            ));
        }
    }
    let segs: Vec<u64> = got.iter().map(|g| g[1]).collect();
    Ok((sent.len() as u64, format!("{sizes:?} in {segs:?} 1 KiB segments, intact")))
}

/// The IPv4 and L4 checksums of an Ethernet + IPv4 + TCP/UDP frame are right: `Err` says which
/// is not. Returns the IPv4 ID, the TCP header (if TCP) and the L4 payload.
fn check_ipv4(f: &[u8]) -> Result<(u16, Option<TcpHeader>, &[u8]), String> {
    if f.len() < 34 || f[12..14] != [0x08, 0x00] {
        return Err(format!("not IPv4 ({} bytes)", f.len()));
    }
    let ip = Ipv4HeaderSlice::from_slice(&f[14..]).map_err(|e| format!("IPv4 header: {e}"))?;
    let hdr = ip.to_header();
    if hdr.calc_header_checksum() != ip.header_checksum() {
        return Err(format!(
            "IPv4 header checksum {:#06x}, want {:#06x}",
            ip.header_checksum(),
            hdr.calc_header_checksum()
        ));
    }
    let end = 14 + usize::from(ip.total_len());
    let l4 = f.get(14 + ip.slice().len()..end).ok_or(format!("IPv4 total length {} past the frame", ip.total_len()))?;
    let (src, dst) = (ip.source(), ip.destination());
    match ip.protocol() {
        etherparse::IpNumber::TCP => {
            let (tcp, payload) = TcpHeader::from_slice(l4).map_err(|e| format!("TCP header: {e}"))?;
            let want = tcp.calc_checksum_ipv4_raw(src, dst, payload).map_err(|e| e.to_string())?;
            if tcp.checksum != want {
                return Err(format!("TCP checksum {:#06x}, want {want:#06x}", tcp.checksum));
            }
            Ok((ip.identification(), Some(tcp), payload))
        }
        etherparse::IpNumber::UDP => {
            let (udp, payload) = UdpHeader::from_slice(l4).map_err(|e| format!("UDP header: {e}"))?;
            let want = udp.calc_checksum_ipv4_raw(src, dst, payload).map_err(|e| e.to_string())?;
            if udp.checksum != want {
                return Err(format!("UDP checksum {:#06x}, want {want:#06x}", udp.checksum));
            }
            Ok((ip.identification(), None, payload))
        }
        p => Err(format!("IP protocol {p:?}")),
    }
}

/// Byte `k` of packet `n`'s payload in `offload-guest send` (its `payload_byte`).
fn payload_byte(n: u32, k: usize) -> u8 {
    (n as usize).wrapping_mul(37).wrapping_add(k) as u8
}

fn is_ipv4_to(f: &[u8], dst: [u8; 6]) -> bool {
    f.len() >= 34 && f[0..6] == dst && f[12..14] == [0x08, 0x00]
}

/// tx-csum: IPv4/TCP and IPv4/UDP frames the guest sends with every checksum zeroed, in one
/// segment and in three, leave with right IPv4 header, TCP and UDP checksums and their payload.
fn tx_csum(c: &Ctx) -> Result<(u64, String), String> {
    /// `offload-guest`'s CSUM_SIZES, each as TCP and UDP, in one segment and in three.
    const SIZES: [usize; 4] = [60, 100, 1000, 1514];
    let n = SIZES.len() * 4;
    c.lab.wire(0).drain().map_err(|e| e.to_string())?;
    let dst = burst_lab::format_mac(&OTHER_MAC);
    let app = match start(c, &["send", "csum", &dst])? {
        Ok(app) => app,
        Err(why) => return refused(c, Feature::TxCsum, &why),
    };
    let got = collect(c, 0, n, |f| is_ipv4_to(f, OTHER_MAC))?;
    let v = done(c, "offload-guest send csum", app)?;
    if got.len() != n {
        return Err(format!("the host got {} of {n} frames; guest: {v}", got.len()));
    }
    for (k, f) in got.iter().enumerate() {
        let len = SIZES[k / 4];
        let (id, tcp, payload) = check_ipv4(f).map_err(|e| format!("frame {k} ({len} bytes): {e}"))?;
        if usize::from(id) != k || f.len() != len || tcp.is_some() != (k % 4 < 2) {
            return Err(format!("frame {k}: IPv4 ID {id}, {} bytes, TCP {}", f.len(), tcp.is_some()));
        }
        if payload.iter().enumerate().any(|(i, &b)| b != payload_byte(k as u32, i)) {
            return Err(format!("frame {k}: payload damaged"));
        }
    }
    Ok((n as u64, format!("{n} frames ({SIZES:?} bytes, TCP and UDP, 1 and 3 segments): every checksum right")))
}

/// rx-csum: good IPv4/TCP and IPv4/UDP frames, and ones with a bad IPv4 header, TCP or UDP
/// checksum, arrive (bad ones too, as DPDK's em delivers them) with the device's verdicts as
/// flags and the bad ones counted; or, where the model checks nothing ([`limit`]), all arrive
/// with both verdicts unknown and nothing counted.
fn rx_csum(c: &Ctx) -> Result<(u64, String), String> {
    let own = c.mac(0);
    let payload: Vec<u8> = (0..200u8).collect();
    let build = |tcp: bool| {
        let b = PacketBuilder::ethernet2(HOST_MAC, own).ipv4([192, 0, 2, 1], [192, 0, 2, 2], 64);
        let mut f = Vec::new();
        let written = if tcp {
            b.tcp(4000, 5000, 1, 65535).ack(1).write(&mut f, &payload)
        } else {
            b.udp(4000, 5000).write(&mut f, &payload)
        };
        written.map(|()| f).map_err(|e| e.to_string())
    };
    let (tcp, udp) = (build(true)?, build(false)?);
    let flip = |f: &[u8], at: usize| {
        let mut f = f.to_vec();
        f[at] ^= 0x5a;
        f
    };
    // (frame, IP verdict, L4 verdict) when the device checks: 1 bad, 2 good.
    let cases: [(&str, Vec<u8>, u64, u64); 5] = [
        ("good TCP", tcp.clone(), 2, 2),
        ("good UDP", udp.clone(), 2, 2),
        ("bad IPv4 header checksum", flip(&tcp, 14 + 10), 1, 2),
        ("bad TCP checksum", flip(&tcp, 34 + 16), 2, 1),
        ("bad UDP checksum", flip(&udp, 34 + 6), 2, 1),
    ];
    let app = match start(c, &["recv", "--rx-offloads", "checksum"])? {
        Ok(app) => app,
        Err(why) => return refused(c, Feature::RxCsum, &why),
    };
    let sent: Vec<Vec<u8>> = cases.iter().map(|(_, f, _, _)| f.clone()).collect();
    let (v, got) = recv_frames(c, app, &sent)?;
    if got.len() != sent.len() {
        return Err(format!("{} of {} frames arrived (bad ones are delivered): {}", got.len(), sent.len(), v["stats"]));
    }
    let checked = got.iter().any(|g| g[2] != 0 || g[3] != 0);
    let xs = &v["xstats"];
    let counted: u64 = xs
        .as_object()
        .map_or(0, |o| o.iter().filter(|(k, _)| is_cksum_error(k)).map(|(_, x)| x.as_u64().unwrap_or(0)).sum());
    for ((what, f, ip, l4), g) in cases.iter().zip(&got) {
        let want: [u64; 2] = if checked { [*ip, *l4] } else { [0, 0] };
        if g[0] != f.len() as u64 || g[6] != fnv1a(f) || g[2..4] != want {
            return Err(format!("{what}: arrived as {g:?}, want {} bytes intact with verdicts {want:?}", f.len()));
        }
    }
    match (checked, limit(c.nic, Feature::RxCsum)) {
        (true, _) => {
            if counted != 3 {
                return Err(format!("3 bad checksums delivered, {counted} counted: {xs}"));
            }
            Ok((5, "good frames flagged good; bad IPv4, TCP, UDP ones delivered flagged bad and counted".into()))
        }
        (false, Some(Limit::Unchecked(why))) => {
            if counted != 0 {
                return Err(format!("no checksum checked, yet {counted} counted bad: {xs}"));
            }
            Ok((5, format!("{why}; all 5 frames (3 corrupted) delivered intact, verdicts unknown, none counted")))
        }
        (false, _) => Err(format!("{} checked no checksum: every verdict unknown", c.nic)),
    }
}

/// Whether xstat `name` counts received frames with a bad checksum (DPDK's names:
/// `rx_l4_checksum_errors`, `rx_ip_cksum_bad`, ...).
fn is_cksum_error(name: &str) -> bool {
    name.starts_with("rx")
        && (name.contains("cksum") || name.contains("checksum"))
        && (name.contains("bad") || name.contains("error"))
}

/// vlan: with VLAN strip on, tagged frames arrive untagged with the tag in `vlan_tci` (an
/// untagged one with none); with VLAN insert on, frames the guest asks to tag leave tagged with
/// its TCI and otherwise unchanged.
fn vlan(c: &Ctx) -> Result<(u64, String), String> {
    /// `offload-guest`'s VLAN_FRAMES and TCI_BASE.
    const FRAMES: u32 = 16;
    const TCI_BASE: u16 = (5 << 13) | 100;
    let own = c.mac(0);
    let tag = |f: &[u8], tci: u16| [&f[..12], &[0x81, 0x00], &tci.to_be_bytes()[..], &f[12..]].concat();
    let plain: Vec<Vec<u8>> = (0..6).map(|k| TestFrame::build(own, HOST_MAC, k, 60 + 290 * k as usize)).collect();
    let tcis = [1u16, 100, 4094, (7 << 13) | 5, (1 << 12) | 42, 0];
    // The last one goes untagged.
    let sent: Vec<Vec<u8>> =
        plain.iter().zip(tcis).enumerate().map(|(k, (f, t))| if k == 5 { f.clone() } else { tag(f, t) }).collect();
    let app = match start(c, &["recv", "--rx-offloads", "vlan-strip"])? {
        Ok(app) => app,
        Err(why) => return refused(c, Feature::Vlan, &why),
    };
    let (v, got) = recv_frames(c, app, &sent)?;
    if got.len() != sent.len() {
        return Err(format!("strip: {} of {} frames arrived: {}", got.len(), sent.len(), v["stats"]));
    }
    for (k, (f, g)) in plain.iter().zip(&got).enumerate() {
        let want = if k == 5 { [0, 0] } else { [1, u64::from(tcis[k])] };
        if g[0] != f.len() as u64 || g[6] != fnv1a(f) || g[4..6] != want {
            return Err(format!(
                "strip: frame {k} arrived as {g:?}: want {} bytes untagged, stripped/TCI {want:?}",
                f.len()
            ));
        }
    }
    c.lab.wire(0).drain().map_err(|e| e.to_string())?;
    let dst = burst_lab::format_mac(&OTHER_MAC);
    let app = match start(c, &["send", "vlan", &dst])? {
        Ok(app) => app,
        Err(why) => return refused(c, Feature::Vlan, &why).map(|(n, d)| (n + 6, format!("strip: shown; insert: {d}"))),
    };
    let out = collect(c, 0, FRAMES as usize, |f| f.len() >= 18 && f[0..6] == OTHER_MAC)?;
    let v = done(c, "offload-guest send vlan", app)?;
    if out.len() != FRAMES as usize {
        return Err(format!("insert: the host got {} of {FRAMES} frames; guest: {v}", out.len()));
    }
    for (k, f) in out.iter().enumerate() {
        let tci = TCI_BASE + k as u16;
        if f[12..16] != [[0x81, 0x00], tci.to_be_bytes()].concat()[..] {
            return Err(format!(
                "insert: frame {k} has {:02x?} after its addresses, want tag 8100 {tci:04x}",
                &f[12..16]
            ));
        }
        let untagged = [&f[..12], &f[16..]].concat();
        let t = TestFrame::parse(&untagged).map_err(|e| format!("insert: frame {k} without its tag: {e}"))?;
        if t.seq != k as u32 || t.len != 60 + k * 90 {
            return Err(format!("insert: frame {k} is test frame {} of {} bytes", t.seq, t.len));
        }
    }
    Ok((6 + u64::from(FRAMES), format!("strip: 5 tags into vlan_tci, 1 untagged; insert: {FRAMES} tagged, intact")))
}

/// tso: one TCP packet of 64 KiB payload in a chain of 2 KiB buffers, sent with TSO at MSS 1460,
/// leaves as MSS-sized frames (the last one shorter) whose IPv4 lengths, IDs and checksums, TCP
/// sequence numbers, flags and checksums are right, and whose payloads put together are the 64
/// KiB sent.
fn tso(c: &Ctx) -> Result<(u64, String), String> {
    /// `offload-guest`'s TSO_PAYLOAD, TSO_MSS and TSO_SEQ.
    const PAYLOAD: usize = 65536;
    const MSS: usize = 1460;
    const SEQ: u32 = 0x1234_5678;
    let n = PAYLOAD.div_ceil(MSS);
    c.lab.wire(0).drain().map_err(|e| e.to_string())?;
    let dst = burst_lab::format_mac(&OTHER_MAC);
    let app = match start(c, &["send", "tso", &dst])? {
        Ok(app) => app,
        Err(why) => return refused(c, Feature::Tso, &why),
    };
    let got = collect(c, 0, n, |f| is_ipv4_to(f, OTHER_MAC))?;
    let v = done(c, "offload-guest send tso", app)?;
    if got.len() != n {
        return Err(format!("the host got {} of {n} segments; guest: {v}", got.len()));
    }
    let mut stream = Vec::with_capacity(PAYLOAD);
    let mut first_id = None;
    for (k, f) in got.iter().enumerate() {
        let (id, tcp, payload) = check_ipv4(f).map_err(|e| format!("segment {k}: {e}"))?;
        let tcp = tcp.ok_or(format!("segment {k} is not TCP"))?;
        let want_len = MSS.min(PAYLOAD - k * MSS);
        let first = *first_id.get_or_insert(id);
        let last = k == n - 1;
        if payload.len() != want_len
            || f.len() != 54 + want_len
            || tcp.sequence_number != SEQ.wrapping_add((k * MSS) as u32)
            || id != first.wrapping_add(k as u16)
            || tcp.psh != last
            || !tcp.ack
        {
            return Err(format!(
                "segment {k}: {} payload bytes in {} (want {want_len}), seq {:#x}, IPv4 ID {id} (first {first}), PSH {}",
                payload.len(),
                f.len(),
                tcp.sequence_number,
                tcp.psh
            ));
        }
        stream.extend_from_slice(payload);
    }
    if let Some(i) = stream.iter().enumerate().position(|(i, &b)| b != payload_byte(0, i)) {
        return Err(format!("the reassembled payload differs at byte {i}"));
    }
    let segs = v["segs"].to_string();
    Ok((n as u64, format!("64 KiB in {segs} buffers left as {n} segments of MSS {MSS}: headers right, byte-exact")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_model_runs_the_cases_and_says_what_qemu_cannot_show() {
        for nic in NicModel::ALL {
            assert_eq!(cases(nic).len(), if runs_on(nic) { CASES.len() } else { 0 }, "{nic}");
            if runs_on(nic) && nic.kernel_driver() == "e1000" {
                assert!(
                    matches!(limit(nic, Feature::RxCsum), Some(Limit::Unchecked(w)) if w.contains("IXSM")),
                    "{nic}"
                );
                for f in [Feature::Scatter, Feature::TxCsum, Feature::Vlan, Feature::Tso] {
                    assert_eq!(limit(nic, f), None, "{nic}: QEMU's 8254x shows {f:?}");
                }
            }
            if nic.kernel_driver() == "virtio-pci" {
                assert!(runs_on(nic), "{nic}");
                assert_eq!(limit(nic, Feature::Scatter), None, "{nic}: QEMU offers MRG_RXBUF");
                for f in [Feature::TxCsum, Feature::RxCsum, Feature::Vlan, Feature::Tso] {
                    assert!(matches!(limit(nic, f), Some(Limit::Refused(_))), "{nic}: {f:?}");
                }
            }
        }
    }

    #[test]
    fn checksum_error_counters_are_found_by_name() {
        for name in ["rx_ip_checksum_errors", "rx_l4_checksum_errors", "rx_l4_cksum_bad"] {
            assert!(is_cksum_error(name), "{name}");
        }
        for name in ["rx_chain_errors", "rx_crc_errors", "tx_l4_checksum_errors"] {
            assert!(!is_cksum_error(name), "{name}");
        }
    }

    #[test]
    fn the_host_checks_catch_a_wrong_checksum() {
        let b = PacketBuilder::ethernet2([2; 6], [4; 6]).ipv4([1, 2, 3, 4], [5, 6, 7, 8], 64).udp(1, 2);
        let mut f = Vec::new();
        b.write(&mut f, &[9; 30]).unwrap();
        assert!(check_ipv4(&f).is_ok());
        let mut bad = f.clone();
        bad[34 + 6] ^= 1;
        assert!(check_ipv4(&bad).unwrap_err().contains("UDP checksum"));
        bad = f.clone();
        bad[14 + 10] ^= 1;
        assert!(check_ipv4(&bad).unwrap_err().contains("IPv4 header checksum"));
    }
}
