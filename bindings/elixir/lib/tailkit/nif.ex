defmodule Tailkit.Nif do
  @moduledoc false
  # c_src/tailkit_nif.c: one function per tailkit.h call (see Tailkit).
  @on_load :load

  def load do
    path = :filename.join(:code.priv_dir(:tailkit), ~c"tailkit_nif")
    :erlang.load_nif(path, 0)
  end

  defp nif, do: :erlang.nif_error(:tailkit_nif_not_loaded)

  def new, do: nif()
  def set(_node, _key, _value), do: nif()
  def start(_node), do: nif()
  def wait_running(_node, _ms), do: nif()
  def stop(_node), do: nif()
  def close(_node), do: nif()
  def state(_node), do: nif()
  def ips(_node), do: nif()
  def status(_node), do: nif()
  def listen(_node, _port), do: nif()
  def accept(_listener, _ref), do: nif()
  def dial_start(_node, _host, _port), do: nif()
  def dial_finish(_pending, _ref), do: nif()
  def fd_close(_res), do: nif()
  def udp_bind(_node, _port), do: nif()
  def close_raw(_fd), do: nif()
end
