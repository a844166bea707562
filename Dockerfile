# Flowline in a container: `flowline serve` (or any other verb) on the official .NET images.
# Build:  docker build -t flowline .
# Run:    docker run --rm --shm-size=2g -p 8765:8765 -v "$PWD/examples:/pipelines:ro" \
#           -e FLOWLINE_TOKEN_FILE=/run/secrets/flowline-token -v "$PWD/token:/run/secrets/flowline-token:ro" \
#           flowline serve /pipelines/ao-basic/pipeline.yaml --host 0.0.0.0
# Every frame lives under /dev/shm, which Docker limits to 64 MB by default: size it for the pipeline
# (`flowline validate` says when the streams do not fit). See docs/deployment.md.

# Stage 1: the SDK builds and publishes the command (Flowline.Cli, with Flowline.Worker beside it).
FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
WORKDIR /src
# The project files first, so that the restore is cached until a dependency changes.
COPY global.json Directory.Build.props Directory.Packages.props ./
COPY src/Directory.Build.props src/
COPY src/Flowline.SharedMemory/Flowline.SharedMemory.csproj src/Flowline.SharedMemory/
COPY src/Flowline/Flowline.csproj src/Flowline/
COPY src/Flowline.Worker/Flowline.Worker.csproj src/Flowline.Worker/
COPY src/Flowline.ControlPlane/Flowline.ControlPlane.csproj src/Flowline.ControlPlane/
COPY src/Flowline.Client/Flowline.Client.csproj src/Flowline.Client/
COPY src/Flowline.Nats/Flowline.Nats.csproj src/Flowline.Nats/
COPY src/Flowline.Cli/Flowline.Cli.csproj src/Flowline.Cli/
RUN dotnet restore src/Flowline.Cli/Flowline.Cli.csproj
COPY src/ src/
COPY .editorconfig ./
RUN dotnet publish src/Flowline.Cli/Flowline.Cli.csproj -c Release --no-restore -o /app

# Stage 2: the ASP.NET Core runtime image (the .NET runtime plus ASP.NET Core, which the control plane
# uses); no SDK, no sources.
FROM mcr.microsoft.com/dotnet/aspnet:10.0 AS runtime
WORKDIR /app
COPY --from=build /app ./
COPY examples/ /app/examples/
# The images' non-root user (uid 1654); its regions go to /dev/shm/flowline.
USER $APP_UID
EXPOSE 8765
ENTRYPOINT ["dotnet", "/app/Flowline.Cli.dll"]
CMD ["--help"]
