defmodule TailkitTest do
  # Against the interop harness's Go tsnet node go1 (testcontrol + Go's
  # derper), started by tests/interop/test_elixir_binding.py, which passes:
  # TK_CONTROL_URL, TK_AUTHKEY, TK_ADMIN_URL (the harness's admin API),
  # TK_GO1_IP, TK_STATE_DIR.  One node per OS process: every test shares
  # the node of setup_all; they run in the order written (seed 0), the
  # node's close last.
  use ExUnit.Case, async: false

  setup_all do
    env = fn k -> System.get_env(k) || raise "#{k} is not set (run via test_elixir_binding.py)" end
    # the VM's descriptors before the node exists (see the close test),
    # once the HTTP client has started (its resolver is a port program
    # with two pipes)
    {:ok, _} = :httpc.request(~c"#{env.("TK_ADMIN_URL")}/nodes")
    :persistent_term.put(:tk_fds_before, node_fds())

    {:ok, tk} =
      Tailkit.start(
        hostname: "tkex",
        authkey: env.("TK_AUTHKEY"),
        control_url: env.("TK_CONTROL_URL"),
        state_dir: env.("TK_STATE_DIR"),
        derp_plain_http: true
      )

    {:ok, ips} = Tailkit.up(tk, 90_000)
    IO.puts("up: #{Enum.join(ips, ",")}")
    %{tk: tk, me: hd(ips), go1: env.("TK_GO1_IP"), admin: env.("TK_ADMIN_URL")}
  end

  # go1 dials addr through the harness (network "tcp", "udp", "http");
  # retried until ok (paths come up in the first seconds)
  defp go_dial(admin, network, addr, payload, tries \\ 60) do
    body =
      ~s({"from":"go1","network":"#{network}","addr":"#{addr}",) <>
        ~s("payload":"#{payload}","timeout_ms":5000})

    {:ok, {{_, 200, _}, _, resp}} =
      :httpc.request(:post, {~c"#{admin}/dial", [], ~c"application/json", body}, [timeout: 20_000],
        body_format: :binary
      )

    cond do
      resp =~ ~s("ok":true) ->
        [_, reply] = Regex.run(~r/"reply":"((?:[^"\\]|\\.)*)"/, resp)
        reply

      tries > 1 ->
        Process.sleep(500)
        go_dial(admin, network, addr, payload, tries - 1)

      true ->
        flunk("go1 #{network} #{addr}: #{resp}")
    end
  end

  test "state, ips", %{tk: tk, me: me} do
    assert Tailkit.state(tk) == "Running"
    assert {:ok, [^me | _]} = Tailkit.ips(tk)
  end

  test "dial go1 by name: a :socket with the peer's identity", %{tk: tk, go1: go1} do
    {:ok, s, peer} = Tailkit.dial(tk, "go1", 7)
    assert peer.remote_ip == go1 and peer.remote_port == 7
    assert String.starts_with?(peer.node_name, "go1.") and peer.user_login =~ "@"
    :ok = :socket.send(s, "hello-elixir")
    assert {:ok, "hello-elixir"} = :socket.recv(s, 12, 10_000)
    :ok = :socket.shutdown(s, :write)
    :socket.close(s)
  end

  test "dial by IP; shutdown(:write) is a FIN: go1's echo ends", %{tk: tk, go1: go1} do
    {:ok, s, %{remote_ip: ^go1}} = Tailkit.dial(tk, go1, 7)
    :ok = :socket.send(s, "half-close")
    :ok = :socket.shutdown(s, :write)
    assert {:ok, "half-close"} = :socket.recv(s, 10, 10_000)
    assert {:error, :closed} = :socket.recv(s, 0, 10_000)
    :socket.close(s)
  end

  test "go1 echoes through an accepted :socket; identity", %{tk: tk, me: me, admin: admin, go1: go1} do
    {:ok, l} = Tailkit.listen(tk, 7010)

    t =
      Task.async(fn ->
        {:ok, s, peer} = Tailkit.accept(l, timeout: 60_000)
        {:ok, data} = :socket.recv(s, 0, 10_000)
        :ok = :socket.send(s, data)
        # go1 closes after reading the echo
        _ = :socket.recv(s, 0, 10_000)
        :socket.close(s)
        peer
      end)

    assert go_dial(admin, "tcp", "#{me}:7010", "hello-from-go") == "hello-from-go"
    peer = Task.await(t, 70_000)
    assert peer.remote_ip == go1 and peer.local_ip == me and peer.local_port == 7010
    assert String.starts_with?(peer.node_name, "go1.") and peer.user_login =~ "@"
    Tailkit.close_listener(l)
  end

  test "UDP: go1's datagram echoed; 1..1200 bytes to go1 come back whole",
       %{tk: tk, me: me, admin: admin, go1: go1} do
    {:ok, u} = Tailkit.udp(tk, 7010)
    assert u.port == 7010

    t =
      Task.async(fn ->
        {:ok, {data, from}} = Tailkit.UDP.recvfrom(u, 60_000)
        :ok = Tailkit.UDP.sendto(u, data, from)
        from
      end)

    assert go_dial(admin, "udp", "#{me}:7010", "dgram-ex") == "dgram-ex"
    assert {^go1, _port} = Task.await(t, 70_000)
    Tailkit.UDP.close(u)

    {:ok, u} = Tailkit.udp(tk, 0)
    assert u.port > 0

    for size <- 1..1200 do
      data = :binary.copy(<<rem(size, 251)>>, size)
      assert udp_echo(u, data, {go1, 7}, 20) == {data, {go1, 7}}, "size #{size}"
    end

    Tailkit.UDP.close(u)
  end

  defp udp_echo(_u, _data, _to, 0), do: :lost

  defp udp_echo(u, data, to, tries) do
    :ok = Tailkit.UDP.sendto(u, data, to)

    case Tailkit.UDP.recvfrom(u, 500) do
      {:ok, got} -> got
      {:error, :timeout} -> udp_echo(u, data, to, tries - 1)
    end
  end

  test "status and whois", %{tk: tk, me: me, go1: go1} do
    {:ok, st} = Tailkit.status(tk)
    assert st["BackendState"] == "Running"
    assert me in st["Self"]["TailscaleIPs"]
    assert Enum.any?(Map.values(st["Peer"]), &(go1 in &1["TailscaleIPs"]))
    {:ok, w} = Tailkit.whois(tk, go1)
    assert String.starts_with?(w["Node"]["DNSName"], "go1.")
    assert w["UserProfile"]["LoginName"] =~ "@"
    assert {:error, {:enoent, _}} = Tailkit.whois(tk, "100.64.99.99")
    assert {:error, {:einval, _}} = Tailkit.whois(tk, "nonsense")
  end

  @tag :tmp_dir
  test "bad arguments: clear errors", %{tk: tk, go1: go1} = ctx do
    assert {:error, {:einval, m}} = Tailkit.listen(tk, 0)
    assert m =~ "1..65535"
    {:ok, l} = Tailkit.listen(tk, 7011)
    assert {:error, {:eaddrinuse, _}} = Tailkit.listen(tk, 7011)
    assert {:error, {:etimedout, _}} = Tailkit.accept(l, timeout: 200)
    Tailkit.close_listener(l)
    assert {:error, {:ebadf, _}} = Tailkit.accept(l, timeout: 200)
    assert {:error, {code, m}} = Tailkit.dial(tk, "no-such-node", 7)
    assert is_atom(code) and m =~ "name"
    assert {:error, {:einval, _}} = Tailkit.dial(tk, go1, 0)
    {:ok, u} = Tailkit.udp(tk)
    assert {:error, {:emsgsize, _}} = Tailkit.UDP.sendto(u, :binary.copy("x", 1253), {go1, 7})
    assert {:error, {:einval, _}} = Tailkit.UDP.sendto(u, "x", {"go1", 7})
    assert {:error, {:einval, _}} = Tailkit.UDP.sendto(u, "x", {go1, 0})
    Tailkit.UDP.close(u)
    # settings: an unknown key names the accepted ones; a second node in
    # this OS process is refused
    assert {:error, {:einval, m}} = Tailkit.start(state_dir: ctx.tmp_dir, bogus: "1")
    assert m =~ "accepted"
    assert {:error, {:einval, _}} = Tailkit.start(state_dir: ctx.tmp_dir, hostname: 1.5)

    assert {:error, {:eexist, _}} =
             Tailkit.start(state_dir: ctx.tmp_dir, control_url: "http://127.0.0.1:9")
  end

  test "close: later calls give :ebadf, not a crash", %{tk: tk} do
    {:ok, l} = Tailkit.listen(tk, 7012)
    assert :ok = Tailkit.close(tk)
    assert :ok = Tailkit.close(tk)
    assert {:error, {:ebadf, _}} = Tailkit.ips(tk)
    assert {:error, {:ebadf, _}} = Tailkit.listen(tk, 7013)
    assert {:error, {:ebadf, _}} = Tailkit.dial(tk, "go1", 7)
    assert {:error, {:ebadf, _}} = Tailkit.status(tk)
    # the stopped node's listener ends: an error, not a hang
    assert {:error, {_, _}} = Tailkit.accept(l, timeout: 5_000)
    Tailkit.close_listener(l)
    # every descriptor the node made is given back (the stop callback of
    # the listener runs on the poller: give it a moment); nng's task pool,
    # an epoll and an eventfd, lives as long as the process
    Process.sleep(200)
    left = Map.drop(node_fds(), Map.keys(:persistent_term.get(:tk_fds_before)))

    assert Enum.sort(Map.values(left)) in [[], ["anon_inode:[eventfd]", "anon_inode:[eventpoll]"]],
           inspect(left)
  end

  # The process's descriptors except TCP/UDP sockets (the harness's HTTP
  # client keeps connections): fd => what it points to.
  defp node_fds do
    unix =
      File.read!("/proc/net/unix")
      |> String.split("\n", trim: true)
      |> Enum.drop(1)
      |> Enum.map(&Enum.at(String.split(&1), 6))
      |> MapSet.new()

    for fd <- File.ls!("/proc/self/fd"),
        {:ok, t} <- [File.read_link("/proc/self/fd/" <> fd)],
        not String.starts_with?(t, "socket:[") or
          MapSet.member?(unix, String.slice(t, 8..-2//1)),
        into: %{},
        do: {fd, t}
  end
end
