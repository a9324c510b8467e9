FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY config config
COPY telephony telephony
COPY journal journal
COPY recordings recordings
COPY hotline hotline
RUN pip install --no-cache-dir .
EXPOSE 8080
# The schema first (creates it, or migrates it to this image's version), then the service.
CMD ["sh", "-c", "hotline db upgrade && exec hotline serve"]
