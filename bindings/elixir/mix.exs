defmodule Mix.Tasks.Compile.TailkitNif do
  @moduledoc """
  Builds priv/tailkit_nif.so with cc against libtailkit (pkg-config
  tailkit; PKG_CONFIG_PATH for a prefix of `cmake --install`) and jansson.
  No elixir_make or other Hex package: the project builds offline.
  """
  use Mix.Task.Compiler

  @src "c_src/tailkit_nif.c"
  @out "priv/tailkit_nif.so"

  @impl true
  def run(_args) do
    if stale?() do
      File.mkdir_p!("priv")
      erts = Path.join([:code.root_dir(), "usr", "include"])
      {tk, libdir} = tailkit_flags()

      args =
        ~w(-shared -fPIC -O2 -Wall -Wextra -Werror -std=c11 -D_GNU_SOURCE) ++
          ["-I#{erts}", "-o", @out, @src] ++
          tk ++
          ["-ljansson", "-Wl,-rpath,#{libdir}"]

      case System.cmd("cc", args, stderr_to_stdout: true) do
        {_, 0} ->
          Mix.shell().info("compiled #{@out} against #{libdir}")
          # priv/ did not exist when Mix linked it into _build: link it now
          Mix.Project.build_structure()
          {:ok, []}

        {out, _} ->
          Mix.raise("cc #{Enum.join(args, " ")} failed:\n#{out}")
      end
    else
      {:noop, []}
    end
  end

  defp stale? do
    case File.stat(@out) do
      {:ok, %{mtime: out}} -> File.stat!(@src).mtime > out
      _ -> true
    end
  end

  # TAILKIT_PREFIX, else pkg-config, else the repository's build tree
  defp tailkit_flags do
    root = Path.expand("../..", __DIR__)

    case System.get_env("TAILKIT_PREFIX") do
      p when is_binary(p) and p != "" ->
        {["-I#{p}/include", "-L#{p}/lib", "-ltailkit"], "#{p}/lib"}

      _ ->
        case System.cmd("pkg-config", ~w(--cflags --libs tailkit), stderr_to_stdout: true) do
          {flags, 0} ->
            {libdir, 0} = System.cmd("pkg-config", ~w(--variable=libdir tailkit))
            {String.split(flags), Path.expand(String.trim(libdir))}

          _ ->
            build = Path.join(root, "build/tools/embed")

            unless File.exists?(Path.join(build, "libtailkit.so")) do
              Mix.raise(
                "libtailkit not found: set TAILKIT_PREFIX or PKG_CONFIG_PATH to a " <>
                  "`cmake --install` prefix, or build #{build}/libtailkit.so"
              )
            end

            {["-I#{root}/tools/embed/include", "-L#{build}", "-ltailkit"], build}
        end
    end
  end
end

defmodule Tailkit.MixProject do
  use Mix.Project

  def project do
    [
      app: :tailkit,
      version: "0.1.0",
      elixir: "~> 1.14",
      compilers: [:tailkit_nif] ++ Mix.compilers(),
      start_permanent: false,
      deps: []
    ]
  end

  def application, do: [extra_applications: []]
end
