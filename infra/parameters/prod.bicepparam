// Production.
//   az deployment group create --resource-group rg-aada-lms-prod --parameters infra/parameters/prod.bicepparam
// Values that differ per tenant come from the environment (readEnvironmentVariable). See infra/README.md.
using '../main.bicep'

param environmentName = 'prod'

// Flex Consumption (100 is the platform's default maximum). Pool per HTTP instance:
// floor((859 - 25 - 4 timers x 2) / 100) = 8, worst case 8 x 100 + 8 + 25 = 833 of 859 connections.
// Always-ready HTTP instances (httpAlwaysReadyInstances, default 0) would come on top of the 100.
param maximumInstanceCount = 100
param instanceMemoryMB = 2048
param httpPerInstanceConcurrency = 16

param corsAllowedOrigins = [
  readEnvironmentVariable('AADA_ADMIN_PORTAL_ORIGIN')
  readEnvironmentVariable('AADA_STUDENT_PORTAL_ORIGIN')
]
param studentPortalUrl = readEnvironmentVariable('AADA_STUDENT_PORTAL_ORIGIN')

// PostgreSQL: General Purpose D2ds_v5 (2 vCores, 8 GiB, max_connections 859).
param postgresVersion = '16'
param postgresSkuName = 'Standard_D2ds_v5'
param postgresSkuTier = 'GeneralPurpose'
param postgresStorageSizeGB = 128
// Regulated records: the longest point-in-time restore window, and backups in the paired region.
param postgresBackupRetentionDays = 35
param postgresGeoRedundantBackup = true
// 'ZoneRedundant' where the region offers it (doubles the compute cost).
param postgresHighAvailability = 'Disabled'
// Microsoft Entra ID only (main.bicep refuses password authentication for prod).
param postgresPasswordAuthEnabled = false
param postgresEntraAdminObjectId = readEnvironmentVariable('AADA_OPERATORS_GROUP_ID')
param postgresEntraAdminName = readEnvironmentVariable('AADA_OPERATORS_GROUP_NAME')
param postgresEntraAdminType = 'Group'
param dbReservedConnections = 25
// Every operator's and CI runner's public IPv4 that runs migrations or psql from outside Azure,
// comma-separated (infra/README.md, step 1). Each deploy creates (or keeps) one rule per address.
var operatorIps = readEnvironmentVariable('AADA_OPERATOR_IPS', '')
param operatorIpAddresses = empty(operatorIps) ? [] : split(operatorIps, ',')

// The same operators group administers the database and sets the Key Vault secrets.
param keyVaultSecretsOfficerPrincipalId = readEnvironmentVariable('AADA_OPERATORS_GROUP_ID')
param keyVaultSecretsOfficerPrincipalType = 'Group'

param logRetentionDays = 90
param appInsightsLocalAuthDisabled = false
param alertEmailAddresses = [
  readEnvironmentVariable('AADA_ALERT_EMAIL')
]
