defmodule Tailkit do
  @moduledoc """
  A tailnet node inside the BEAM: a NIF over libtailkit's native C API
  (`tailkit.h`).  Connections come back as `:socket` sockets (OTP's socket
  module adopting the connection's file descriptor); waiting for a
  connection or a dial is the BEAM's own poller (`enif_select`), never a
  blocked scheduler.

      {:ok, node} = Tailkit.start(hostname: "app", authkey: key, state_dir: "/var/lib/app/tk")
      {:ok, ips} = Tailkit.up(node, 60_000)
      {:ok, l} = Tailkit.listen(node, 8080)
      {:ok, sock, peer} = Tailkit.accept(l)
      :socket.send(sock, "hello " <> peer.node_name)

  Errors are `{:error, {code, message}}`: `code` an errno atom (`:einval`,
  `:ebadf`, `:ebusy`, `:enotconn`, `:eaddrinuse`, `:etimedout`, ...) and
  `message` libtailkit's text.  One node per OS process (BEAM VM).
  """

  @type tk :: reference()
  @type error :: {:error, {atom() | integer(), String.t()}}
  @type peer :: %{
          remote_ip: String.t(),
          remote_port: integer(),
          local_ip: String.t(),
          local_port: integer(),
          node_id: integer(),
          user_id: integer(),
          node_name: String.t(),
          user_login: String.t()
        }

  alias Tailkit.Nif

  defmodule Listener do
    @moduledoc "A TCP listener on every address of the node."
    defstruct [:res, :port]
    @type t :: %__MODULE__{res: reference(), port: integer()}
  end

  @default_control "https://controlplane.tailscale.com"

  @doc """
  Creates and starts a node.  Options: `:hostname`, `:authkey` (default
  `$TS_AUTHKEY`), `:control_url` (default `$TS_CONTROL_URL`, then Tailscale's),
  `:state_dir` (required), `:ephemeral`, and any other `tailkit_set` key
  (`:advertise_tags`, `:ca_file`, `:derp_plain_http`, `:log_level`); an
  unknown one fails with the accepted list.
  """
  @spec start(keyword()) :: {:ok, tk()} | error()
  def start(opts) do
    opts =
      opts
      |> Keyword.put_new_lazy(:authkey, fn -> System.get_env("TS_AUTHKEY") end)
      |> Keyword.put_new_lazy(:control_url, fn ->
        System.get_env("TS_CONTROL_URL") || @default_control
      end)

    {:ok, tk} = Nif.new()

    result =
      Enum.reduce_while(opts, :ok, fn {k, v}, :ok ->
        case set(tk, k, v) do
          :ok -> {:cont, :ok}
          e -> {:halt, e}
        end
      end)

    with :ok <- result, :ok <- Nif.start(tk) do
      {:ok, tk}
    else
      e ->
        Nif.close(tk)
        e
    end
  end

  defp set(_tk, _k, nil), do: :ok
  defp set(tk, k, true), do: set(tk, k, "1")
  defp set(tk, k, false), do: set(tk, k, "0")
  defp set(tk, k, v) when is_integer(v), do: set(tk, k, Integer.to_string(v))
  defp set(tk, k, v) when is_atom(k) and is_binary(v), do: Nif.set(tk, Atom.to_string(k), v)

  defp set(_tk, k, v),
    do:
      {:error,
       {:einval,
        "setting #{inspect(k)}: expected a string, boolean or integer, " <>
          "not #{inspect(v)}"}}

  @doc """
  Waits until the node is Running and has its addresses (in 500 ms slices,
  so `close/1` from another process ends it); returns the addresses.
  """
  @spec up(tk(), non_neg_integer()) :: {:ok, [String.t()]} | error()
  def up(tk, timeout \\ 60_000) when is_integer(timeout) and timeout >= 0 do
    deadline = System.monotonic_time(:millisecond) + timeout
    wait_up(tk, deadline, timeout)
  end

  defp wait_up(tk, deadline, timeout) do
    left = deadline - System.monotonic_time(:millisecond)

    case Nif.wait_running(tk, max(0, min(left, 500))) do
      :ok ->
        case ips(tk) do
          {:ok, [_ | _] = ips} ->
            {:ok, ips}

          _ when left <= 0 ->
            {:error, {:etimedout, "up: Running but no address after #{timeout} ms"}}

          _ ->
            Process.sleep(50) && wait_up(tk, deadline, timeout)
        end

      {:error, {:etimedout, msg}} when left <= 0 ->
        why = msg |> String.split("(state", parts: 2) |> Enum.at(1, " #{state(tk)})")
        {:error, {:etimedout, "up: not running after #{timeout} ms (state" <> why}}

      {:error, {:etimedout, _}} ->
        wait_up(tk, deadline, timeout)

      e ->
        e
    end
  end

  @doc "Stops the node (listeners end, connections close from the node's side)."
  @spec stop(tk()) :: :ok | error()
  def stop(tk), do: Nif.stop(tk)

  @doc "Stops and frees the node; later calls give `{:error, {:ebadf, _}}`."
  @spec close(tk()) :: :ok
  def close(tk), do: Nif.close(tk)

  @doc ~s("NoState", "NeedsLogin", "NeedsMachineAuth", "Starting", "Running", "Stopped")
  @spec state(tk()) :: String.t() | error()
  def state(tk), do: Nif.state(tk)

  @spec ips(tk()) :: {:ok, [String.t()]} | error()
  def ips(tk) do
    with {:ok, s} <- Nif.ips(tk), do: {:ok, String.split(s, ",", trim: true)}
  end

  @doc "ipnstate.Status (Go's /localapi/v0/status) as a map with string keys."
  @spec status(tk()) :: {:ok, map()} | error()
  def status(tk), do: Nif.status(tk)

  @doc """
  Who has this tailnet IP: `{:ok, %{"Node" => status entry, "UserProfile" =>
  user}}` (Go's LocalAPI whois shape) from the current netmap, or
  `{:error, {:enoent, _}}`.
  """
  @spec whois(tk(), String.t()) :: {:ok, map()} | error()
  def whois(tk, ip) when is_binary(ip) do
    with {:ok, _} <- parse_ip(ip), {:ok, st} <- status(tk) do
      nodes = Map.values(st["Peer"] || %{}) ++ List.wrap(st["Self"])

      case Enum.find(nodes, &(ip in (&1["TailscaleIPs"] || []))) do
        nil -> {:error, {:enoent, "whois: no tailnet node has #{ip}"}}
        n -> {:ok, %{"Node" => n, "UserProfile" => (st["User"] || %{})["#{n["UserID"]}"]}}
      end
    end
  end

  @doc "A TCP listener on `port` (1..65535) of every node address."
  @spec listen(tk(), integer()) :: {:ok, Listener.t()} | error()
  def listen(tk, port) when is_integer(port) do
    with {:ok, res} <- Nif.listen(tk, port), do: {:ok, %Listener{res: res, port: port}}
  end

  @spec close_listener(Listener.t()) :: :ok
  def close_listener(%Listener{res: res}), do: Nif.fd_close(res)

  @doc """
  The next connection: `{:ok, socket, peer}` (an OTP `:socket`).  Option
  `timeout:` (ms or `:infinity`, the default).
  """
  @spec accept(Listener.t(), keyword()) :: {:ok, term(), peer()} | error()
  def accept(%Listener{res: res}, opts \\ []) do
    poll(res, &Nif.accept/2, Keyword.get(opts, :timeout, :infinity), "accept")
    |> adopt()
  end

  @doc """
  A TCP connection to `host` (a tailnet name, short or FQDN, or an IP):
  `{:ok, socket, peer}`.  Option `timeout:` (ms, default 30 s).
  """
  @spec dial(tk(), String.t(), integer(), keyword()) :: {:ok, term(), peer()} | error()
  def dial(tk, host, port, opts \\ []) when is_binary(host) and is_integer(port) do
    with {:ok, res} <- Nif.dial_start(tk, host, port) do
      r = poll(res, &Nif.dial_finish/2, Keyword.get(opts, :timeout, 30_000), "dial")
      if match?({:error, {:etimedout, _}}, r), do: Nif.fd_close(res)
      adopt(r)
    end
  end

  # Calls fun until it does not say :wait; between calls the BEAM's poller
  # waits for the descriptor ({:select, res, ref, :ready_input}).
  defp poll(res, fun, timeout, what) do
    ref = make_ref()

    case fun.(res, ref) do
      :wait ->
        receive do
          {:select, ^res, ^ref, :ready_input} -> poll(res, fun, timeout, what)
        after
          timeout ->
            # a readiness message may be on its way: drop it
            receive do
              {:select, ^res, ^ref, _} -> :ok
            after
              0 -> :ok
            end

            {:error, {:etimedout, "#{what}: timed out after #{timeout} ms"}}
        end

      other ->
        other
    end
  end

  defp adopt({:ok, fd, peer}) do
    with {:ok, s} <- adopt_fd(fd), do: {:ok, s, peer}
  end

  defp adopt(other), do: other

  defp normalize({code, msg} = e) when is_atom(code) and is_binary(msg), do: e
  defp normalize(e), do: {:eproto, "adopting the descriptor: #{inspect(e)}"}

  @doc "A UDP socket bound to `port` (0: an ephemeral one) on the node's addresses."
  @spec udp(tk(), integer()) :: {:ok, Tailkit.UDP.t()} | error()
  def udp(tk, port \\ 0) when is_integer(port) do
    with {:ok, fd, bound} <- Nif.udp_bind(tk, port),
         {:ok, s} <- adopt_fd(fd) do
      {:ok, %Tailkit.UDP{socket: s, port: bound}}
    end
  end

  # A descriptor from libtailkit made the BEAM's.  :socket.open/1 works on
  # a dup (a socket opened on an fd it did not dup never closes it), so
  # the original is closed here.  Not :gen_tcp.fdopen/2: a port made that
  # way never closes its descriptor (measured: one leaked per connection).
  defp adopt_fd(fd) do
    r = :socket.open(fd)
    Nif.close_raw(fd)

    case r do
      {:ok, s} -> {:ok, s}
      {:error, e} -> {:error, normalize(e)}
    end
  end

  @doc false
  def parse_ip(ip) do
    case :inet.parse_strict_address(String.to_charlist(ip)) do
      {:ok, a} -> {:ok, a}
      _ -> {:error, {:einval, "#{inspect(ip)}: expected an IPv4 or IPv6 address"}}
    end
  end
end
