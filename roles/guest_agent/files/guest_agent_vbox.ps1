#Requires -Version 3.0
# guest_agent_vbox.ps1: run by the pagefusion.core.guest_agent role (ansible.builtin.script) on VirtualBox
# Windows guests. It makes sure that
#   * the VirtualBox Guest Additions are installed (from -Installer: VBoxWindowsAdditions*.exe, the
#     VBoxGuestAdditions.iso file, or the root folder of the mounted ISO), only when they are missing;
#   * the VBoxService service starts automatically and runs;
#   * its command line does not disable page sharing (--disable-pagesharing). VBoxService has no other
#     page sharing switch: no interval option exists, the interval is a fixed 60 s.
# With -CheckMode 1 it changes nothing and reports what it would do. The last line of its output is one JSON
# object (changed, failed, msg, actions, reboot_required, ...); the exit code is 1 on failure.
# This script was written without a Windows machine to run it on: see the role's README.
[CmdletBinding()]
param(
    [string]$Installer = '',
    [string]$Service = 'VBoxService',
    [int]$CheckMode = 0
)

Set-StrictMode -Version 2.0
$ErrorActionPreference = 'Stop'

$check = [bool]$CheckMode
$result = [ordered]@{
    changed = $false
    failed = $false
    msg = ''
    check_mode = $check
    installed_before = $false
    installed = $false
    version = $null
    image_path_before = $null
    image_path = $null
    start_mode = $null
    state = $null
    actions = @()
    reboot_required = $false
}
$gaKey = 'HKLM:\SOFTWARE\Oracle\VirtualBox Guest Additions'
$serviceKey = "HKLM:\SYSTEM\CurrentControlSet\Services\$Service"
$mountedIso = $null

function Add-Action([string]$text) {
    $result.actions += $text
    $result.changed = $true
}

function Get-ServiceInfo {
    Get-CimInstance -ClassName Win32_Service -Filter "Name='$Service'" -ErrorAction SilentlyContinue
}

function Get-AdditionsVersion {
    if (Test-Path -LiteralPath $gaKey) {
        $props = Get-ItemProperty -LiteralPath $gaKey
        if ($props.PSObject.Properties.Name -contains 'Version') {
            return [string]$props.Version
        }
    }
    return $null
}

function Resolve-Installer([string]$path) {
    if (-not $path) {
        throw ("The VirtualBox Guest Additions are not installed (no '$Service' service). Set " +
            'guest_agent_vbox_additions_installer to VBoxWindowsAdditions.exe, VBoxGuestAdditions.iso or the ' +
            'root of the mounted ISO on the guest (Devices > Insert Guest Additions CD image on the host).')
    }
    if (-not (Test-Path -LiteralPath $path)) {
        throw "guest_agent_vbox_additions_installer '$path' does not exist on the guest."
    }
    $item = Get-Item -LiteralPath $path
    $root = $null
    if ($item.PSIsContainer) {
        $root = $item.FullName
    }
    elseif ($item.Extension -ieq '.iso') {
        if ($check) {
            return @{ Exe = "VBoxWindowsAdditions.exe on $($item.FullName)"; Root = $null }
        }
        $image = Mount-DiskImage -ImagePath $item.FullName -PassThru
        $script:mountedIso = $item.FullName
        $letter = ($image | Get-Volume).DriveLetter
        $root = "$($letter):\"
    }
    else {
        return @{ Exe = $item.FullName; Root = $item.DirectoryName }
    }
    $arch = if ([Environment]::Is64BitOperatingSystem) { 'amd64' } else { 'x86' }
    foreach ($name in @("VBoxWindowsAdditions-$arch.exe", 'VBoxWindowsAdditions.exe')) {
        $candidate = Join-Path $root $name
        if (Test-Path -LiteralPath $candidate) {
            return @{ Exe = $candidate; Root = $root }
        }
    }
    throw "No VBoxWindowsAdditions.exe in '$root' (from guest_agent_vbox_additions_installer '$path')."
}

function Install-Additions([string]$path) {
    $found = Resolve-Installer $path
    # Trust Oracle's driver certificates first, so the silent install does not stop at a prompt.
    if ($found.Root) {
        $certUtil = Join-Path $found.Root 'cert\VBoxCertUtil.exe'
        if (Test-Path -LiteralPath $certUtil) {
            $certs = @(Get-ChildItem -LiteralPath (Join-Path $found.Root 'cert') -Filter 'vbox*.cer')
            foreach ($cert in $certs) {
                Add-Action "$certUtil add-trusted-publisher $($cert.FullName) --root $($cert.FullName)"
                if (-not $check) {
                    & $certUtil add-trusted-publisher $cert.FullName --root $cert.FullName | Out-Null
                }
            }
        }
    }
    Add-Action "$($found.Exe) /S"
    if ($check) {
        return
    }
    $process = Start-Process -FilePath $found.Exe -ArgumentList '/S' -Wait -PassThru
    if ($process.ExitCode -ne 0 -and $process.ExitCode -ne 3010) {
        throw "$($found.Exe) /S failed with exit code $($process.ExitCode)."
    }
    # New drivers (the page sharing support among them) are loaded at the next boot.
    $result.reboot_required = $true
}

try {
    $svc = Get-ServiceInfo
    $result.installed_before = $null -ne $svc
    if ($null -eq $svc) {
        Install-Additions $Installer
        $svc = Get-ServiceInfo
        if ($null -eq $svc -and -not $check) {
            throw "The Guest Additions installer ran, but there is still no '$Service' service."
        }
    }
    $result.installed = $check -or ($null -ne $svc)
    $result.version = Get-AdditionsVersion

    if ($null -ne $svc) {
        # Page sharing must not be switched off on VBoxService's command line.
        $imagePath = [string](Get-ItemProperty -LiteralPath $serviceKey -Name ImagePath).ImagePath
        $result.image_path_before = $imagePath
        $wanted = ($imagePath -replace '\s+--disable-pagesharing(?=\s|"|$)', '').TrimEnd()
        $result.image_path = $wanted
        $restart = $false
        if ($wanted -ne $imagePath) {
            Add-Action "set $serviceKey\ImagePath to: $wanted"
            if (-not $check) {
                Set-ItemProperty -LiteralPath $serviceKey -Name ImagePath -Value $wanted
            }
            $restart = $true
        }
        $result.start_mode = $svc.StartMode
        if ($svc.StartMode -ne 'Auto') {
            Add-Action "Set-Service -Name $Service -StartupType Automatic"
            if (-not $check) {
                Set-Service -Name $Service -StartupType Automatic
            }
            $result.start_mode = 'Auto'
        }
        $result.state = $svc.State
        if ($svc.State -ne 'Running') {
            Add-Action "Start-Service -Name $Service"
            if (-not $check) {
                try {
                    Start-Service -Name $Service
                }
                catch {
                    # Right after a first install the drivers load only at the next boot.
                    if (-not $result.reboot_required) {
                        throw
                    }
                }
            }
            $result.state = 'Running'
        }
        elseif ($restart) {
            Add-Action "Restart-Service -Name $Service"
            if (-not $check) {
                Restart-Service -Name $Service
            }
        }
    }
}
catch {
    $result.failed = $true
    $result.msg = $_.Exception.Message
}
finally {
    if ($mountedIso) {
        Dismount-DiskImage -ImagePath $mountedIso | Out-Null
    }
}

$result | ConvertTo-Json -Compress -Depth 4
if ($result.failed) {
    exit 1
}
