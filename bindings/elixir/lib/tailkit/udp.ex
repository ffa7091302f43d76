defmodule Tailkit.UDP do
  @moduledoc """
  A UDP port on the node's addresses, message boundaries kept: `socket` is
  an OTP `:socket` (AF_UNIX SOCK_SEQPACKET, one message per datagram) whose
  messages carry a 20-byte address header (netstackd/README.md "UDP
  descriptors"); `sendto/3` and `recvfrom/2` add and strip it.
  """
  defstruct [:socket, :port]
  @type t :: %__MODULE__{socket: :socket.socket(), port: integer()}

  @max_v4 1252
  @max_v6 1232

  @doc "Sends one datagram to `{ip, port}` (ip a string or an :inet tuple)."
  @spec sendto(t(), iodata(), {String.t() | :inet.ip_address(), integer()}) ::
          :ok | {:error, term()}
  def sendto(%__MODULE__{socket: s}, data, {ip, port}) do
    size = IO.iodata_length(data)

    with {:ok, addr} <- addr(ip),
         :ok <- check_port(port),
         {:ok, hdr} <- header(addr, port, size) do
      :socket.send(s, [hdr | List.wrap(data)])
    end
  end

  @doc "One datagram: `{:ok, {data, {ip, port}}}`; timeout in ms or :infinity."
  @spec recvfrom(t(), timeout()) :: {:ok, {binary(), {String.t(), integer()}}} | {:error, term()}
  def recvfrom(%__MODULE__{socket: s} = u, timeout \\ :infinity) do
    case :socket.recv(s, 0, timeout) do
      {:ok, <<fam, _flags, port::16, raw::binary-16, payload::binary>>} when fam in [4, 6] ->
        {:ok, {payload, {ip_text(fam, raw), port}}}

      {:ok, <<>>} ->
        {:error, {:econnreset, "udp recvfrom: closed: the node stopped"}}

      {:ok, _garbage} ->
        recvfrom(u, timeout)

      {:error, e} ->
        {:error, e}
    end
  end

  @spec close(t()) :: :ok | {:error, term()}
  def close(%__MODULE__{socket: s}), do: :socket.close(s)

  defp addr(ip) when is_binary(ip), do: Tailkit.parse_ip(ip)
  defp addr(ip) when is_tuple(ip) and tuple_size(ip) in [4, 8], do: {:ok, ip}
  defp addr(ip), do: {:error, {:einval, "#{inspect(ip)}: expected an IPv4 or IPv6 address"}}

  defp check_port(p) when is_integer(p) and p in 1..65535, do: :ok
  defp check_port(p), do: {:error, {:einval, "udp sendto: port #{inspect(p)}: expected 1..65535"}}

  defp header({a, b, c, d}, port, size) when size <= @max_v4,
    do: {:ok, <<4, 0, port::16, a, b, c, d, 0::96>>}

  defp header({_, _, _, _, _, _, _, _} = t, port, size) when size <= @max_v6,
    do: {:ok, <<6, 0, port::16>> <> for(w <- Tuple.to_list(t), into: <<>>, do: <<w::16>>)}

  defp header(_, _, size),
    do:
      {:error,
       {:emsgsize,
        "udp sendto: #{size} bytes; at most #{@max_v4} (IPv4) or " <>
          "#{@max_v6} (IPv6) cross the tailnet"}}

  defp ip_text(4, <<a, b, c, d, _::binary>>), do: :inet.ntoa({a, b, c, d}) |> to_string()

  defp ip_text(6, raw) do
    for(<<w::16 <- raw>>, do: w) |> List.to_tuple() |> :inet.ntoa() |> to_string()
  end
end
