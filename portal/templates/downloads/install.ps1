{% autoescape off %}# SoulsAI client installer for Windows (the twin of install.sh), from {{ server_url }}
#   irm {{ server_url }}/download/install.ps1 | iex
# Installs CPython {{ python_version }} (python-build-standalone, pinned sha256) and the client into
# %LOCALAPPDATA%\SoulsAI\client, verifying the client wheel's Ed25519 signature against the release key
# written below before installing it, and adds Start-menu and desktop shortcuts.
# NOT TRIED ON WINDOWS: its POSIX twin (install.sh) is what the tests run (docs/client.md).
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'  # Invoke-WebRequest is many times slower drawing its bar

$Server = if ($env:SOULSAI_SERVER) { $env:SOULSAI_SERVER } else { '{{ server_url }}' }
$ReleaseKey = '{{ release_key }}'
$Dest = if ($env:SOULSAI_HOME) { $env:SOULSAI_HOME } else { Join-Path $env:LOCALAPPDATA 'SoulsAI\client' }
$PythonUrl = if ($env:SOULSAI_PYTHON_URL) { $env:SOULSAI_PYTHON_URL } else { '{{ windows.url }}' }
$PythonSha = if ($env:SOULSAI_PYTHON_SHA256) { $env:SOULSAI_PYTHON_SHA256 } else { '{{ windows.sha256 }}' }

function Say($text) { Write-Host "soulsai-install: $text" }
function Fail($text) { throw "soulsai-install: error: $text" }
if (-not [Environment]::Is64BitOperatingSystem) { Fail 'the client needs 64-bit Windows' }
if (-not (Get-Command tar.exe -ErrorAction SilentlyContinue)) { Fail 'tar.exe is missing (Windows 10 1803 or newer has it)' }

$Tmp = Join-Path ([IO.Path]::GetTempPath()) ("soulsai-" + [Guid]::NewGuid())
New-Item -ItemType Directory -Force -Path $Tmp, $Dest | Out-Null
try {
    Say "downloading Python {{ python_version }} ($PythonUrl)"
    $Archive = Join-Path $Tmp 'python.tar.gz'
    Invoke-WebRequest -UseBasicParsing -Uri $PythonUrl -OutFile $Archive
    if ((Get-FileHash -Algorithm SHA256 $Archive).Hash.ToLower() -ne $PythonSha) { Fail "the interpreter archive's sha256 is not $PythonSha: refused" }
    $Unpacked = Join-Path $Tmp 'unpacked'
    New-Item -ItemType Directory -Path $Unpacked | Out-Null
    tar.exe -xzf $Archive -C $Unpacked
    if ($LASTEXITCODE -ne 0) { Fail 'could not unpack the interpreter' }
    $PyDir = Join-Path $Dest 'python'
    if (Test-Path $PyDir) { Remove-Item -Recurse -Force $PyDir }
    Move-Item (Join-Path $Unpacked 'python') $PyDir
    $Py = Join-Path $PyDir 'python.exe'

    Say "reading the current client from $Server"
    $Release = Invoke-RestMethod -UseBasicParsing -Uri "$Server/download/release.json"
    if (-not $Release.signature_url) { Fail "client $($Release.version) on the server is not signed yet; try again later" }
    if ($Release.filename -notmatch '^soulsai_client-[0-9][0-9A-Za-z.+_]{0,40}-py3-none-any\.whl$') { Fail 'the server offers no client wheel' }
    $Wheel = Join-Path $Tmp $Release.filename
    Invoke-WebRequest -UseBasicParsing -Uri "$Server$($Release.url)" -OutFile $Wheel
    Invoke-WebRequest -UseBasicParsing -Uri "$Server$($Release.signature_url)" -OutFile "$Wheel.sig"
    if ((Get-FileHash -Algorithm SHA256 $Wheel).Hash.ToLower() -ne $Release.sha256) { Fail 'the wheel is not the file the server announced (sha256)' }

    # The signature, checked with the key in this script before anything of the wheel runs or is installed.
    Say "checking the signature of client $($Release.version)"
    & $Py -m pip install --quiet --disable-pip-version-check 'cryptography>=42'
    if ($LASTEXITCODE -ne 0) { Fail 'could not install cryptography' }
    $Check = @'
import base64, sys
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
wheel = open(sys.argv[1], "rb").read()
signature = open(sys.argv[1] + ".sig", "rb").read()
try:
    Ed25519PublicKey.from_public_bytes(base64.b64decode(sys.argv[2])).verify(signature, wheel)
except (InvalidSignature, ValueError):
    sys.exit("soulsai-install: the signature does not match the release key: this is not a SoulsAI release")
'@
    $CheckFile = Join-Path $Tmp 'check.py'
    Set-Content -Path $CheckFile -Value $Check -Encoding ASCII
    & $Py $CheckFile $Wheel $ReleaseKey
    if ($LASTEXITCODE -ne 0) { Fail "refused client $($Release.version): not installed" }

    Say "installing client $($Release.version) into $Dest"
    & $Py -m pip install --quiet --disable-pip-version-check "$Wheel[keyring]"
    if ($LASTEXITCODE -ne 0) { Fail 'pip could not install the client' }

    $Gui = Join-Path $PyDir 'Scripts\soulsai-client-gui.exe'
    $Shell = New-Object -ComObject WScript.Shell
    foreach ($Folder in @([Environment]::GetFolderPath('Programs'), [Environment]::GetFolderPath('Desktop'))) {
        $Link = $Shell.CreateShortcut((Join-Path $Folder 'SoulsAI client.lnk'))
        $Link.TargetPath = $Gui
        $Link.WorkingDirectory = $Dest
        $Link.Save()
    }
    Say "installed soulsai-client $($Release.version): start 'SoulsAI client' from the Start menu or the desktop"
} finally {
    Remove-Item -Recurse -Force $Tmp -ErrorAction SilentlyContinue
}
{% endautoescape %}
